"""The demo's experiment and its traffic: what ``make run`` adds so the demo shows a verdict.

``demo_experiment_ensure`` gives the demo token the ``feedback`` scope and starts an accuracy
experiment on the demo endpoint (champion against every challenger) unless one runs.
``demo_traffic`` is an HTTP client, like any service calling us: it scores rows of the demo
data (breast cancer, which ships with its labels) through ``/predict`` and sends the true label
of a share of them to ``/feedback`` a moment later, once their prediction-log rows are written.
"""

from __future__ import annotations

import json
import random
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import requests

from experiments.models import Experiment
from experiments.services import experiment_create, experiment_start
from routing.governance.tokens import service_token_update
from routing.models import ServiceToken, hash_token

REASON = "make run: demo experiment"
# Feedback waits this long after its prediction: the log writer flushes every 0.5 s.
FEEDBACK_DELAY_SECONDS = 2.0


def demo_experiment_ensure(*, endpoint: str, raw_token: str, minimum_effect: float = 0.05) -> Experiment:
    """The running demo experiment (created and started when there is none), token scoped for feedback."""
    token = ServiceToken.objects.filter(token_hash=hash_token(raw_token), revoked_at__isnull=True).first()
    if token is not None and "feedback" not in (token.scopes or []):
        service_token_update(
            actor="system", name=token.name, scopes=[*token.scopes, "feedback"], reason=REASON
        )
    live = Experiment.objects.filter(endpoint__name=endpoint, status__in=["draft", "running"]).first()
    if live is None:
        live = experiment_create(
            actor="system",
            endpoint_name=endpoint,
            name=f"{endpoint}: challenger vs champion accuracy",
            primary_metric="accuracy",
            minimum_effect=minimum_effect,
            reason=REASON,
        )
    if live.status == Experiment.Status.DRAFT:
        live = experiment_start(actor="system", experiment_id=live.pk, reason=REASON)
    return live


def _post(session: requests.Session, url: str, token: str, body: Any, timeout: float = 5.0) -> dict[str, Any]:
    response = session.post(
        url,
        data=json.dumps(body),
        timeout=timeout,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    response.raise_for_status()
    return response.json()


def demo_traffic(
    *,
    base_url: str,
    endpoint: str,
    token: str,
    rows_per_request: int = 5,
    requests_per_second: float = 10.0,
    label_share: float = 0.5,
    duration: float | None = None,
    log: Callable[[str], None] = print,
    seed: int | None = None,
) -> dict[str, int]:
    """Score demo rows and send the truth of ``label_share`` of them; counts of what happened."""
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer(as_frame=True)
    columns, rows, labels = list(data.data.columns), data.data.to_numpy().tolist(), data.target.tolist()
    rng = random.Random(seed)
    pending: deque[tuple[float, dict[str, Any]]] = deque()
    counts = {"predictions": 0, "feedback_sent": 0, "feedback_accepted": 0, "errors": 0}
    started = time.monotonic()
    session = requests.Session()
    while duration is None or time.monotonic() - started < duration:
        tick = time.monotonic()
        picked = [rng.randrange(len(rows)) for _ in range(rows_per_request)]
        try:
            answer = _post(
                session,
                f"{base_url}/predict/{endpoint}",
                token,
                {"dataframe_split": {"columns": columns, "data": [rows[i] for i in picked]}},
            )
            counts["predictions"] += 1
            for row, i in enumerate(picked):
                if rng.random() < label_share:
                    pending.append(
                        (tick, {"request_id": answer["request_id"], "row": row, "label": labels[i]})
                    )
            due = []
            while pending and tick - pending[0][0] >= FEEDBACK_DELAY_SECONDS:
                due.append(pending.popleft()[1])
            if due:
                result = _post(session, f"{base_url}/feedback/{endpoint}", token, {"items": due})
                counts["feedback_sent"] += len(due)
                counts["feedback_accepted"] += result["accepted"]
        except (requests.RequestException, ValueError, KeyError) as exc:
            counts["errors"] += 1
            if counts["errors"] % 50 == 1:
                log(f"demo traffic: {exc}")
        time.sleep(max(0.0, 1.0 / requests_per_second - (time.monotonic() - tick)))
    return counts
