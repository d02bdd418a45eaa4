"""``make bench-feedback`` (and part of ``make bench``): /feedback ingestion and its cost to /predict.

One gunicorn (``BENCH_WORKERS`` sync workers, SQLite under a temporary directory, the bench's
scikit-learn model) answers both routes. First it scores ``SEED`` one-row requests to have real
request ids, then measures:

1. ingestion: wrk posts 100 ground-truth items per call (the same 100 request ids, so after the
   first call every item is an idempotent update, the writer's costlier path) at concurrency 2;
   items/s accepted, and items/s written (rows + updates counted in the database afterwards,
   divided by the time from the first call until the writer caught up);
2. the cost to /predict: one-row /predict at concurrency 8 alone, then with feedback for every
   prediction arriving alongside (one call of 100 items per 100 predictions, paced), in
   ``BENCH_FEEDBACK_ROUNDS`` alternating rounds; the median loss of requests/s (target <= 10 %).

    BENCH_SECONDS=5 BENCH_WORKERS=2 .venv/bin/python bench/feedback.py
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.measure import SECONDS, say, wrk  # noqa: E402
from bench.servers import Servers, bench_rows, scoring_body  # noqa: E402
from tests.mlflow_server import MlflowServer  # noqa: E402

WORKERS = int(os.environ.get("BENCH_WORKERS", "2"))
ROUNDS = int(os.environ.get("BENCH_FEEDBACK_ROUNDS", "3"))
SEED = 100
ITEMS_PER_CALL = 100

TOKEN = """
from routing.governance.tokens import service_token_create
print(service_token_create(actor="system", name="bench-fb", all_endpoints=True, rate_limit_per_second=0,
                           scopes=["predict", "feedback"])[1])
"""
WRITTEN = """
from django.db.models import Sum
from experiments.models import Feedback
rows = Feedback.objects.count()
print(rows + (Feedback.objects.aggregate(n=Sum("updates"))["n"] or 0))
"""


def manage_shell(env: dict[str, str], code: str) -> str:
    out = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", code],
        env=env,
        cwd=REPO,
        check=True,
        capture_output=True,
        text=True,
    )
    return out.stdout.strip().splitlines()[-1]


def seed(url: str, headers: dict[str, str]) -> list[dict]:
    """``SEED`` answered one-row predictions, as ground-truth items with their true labels."""
    from sklearn.datasets import load_breast_cancer

    labels = load_breast_cancer().target.tolist()
    rows = bench_rows()[1]
    session = requests.Session()
    items = []
    for i in range(SEED):
        answer = session.post(
            f"{url}/predict/sklearn", data=scoring_body(rows[i : i + 1]), headers=headers
        ).json()
        items.append({"request_id": answer["request_id"], "label": labels[i]})
    time.sleep(2)  # the prediction log is written within a flush period
    return items


def ingestion(url: str, env: dict[str, str], headers: dict[str, str], items: list[dict], tmp: Path) -> None:
    body = json.dumps({"items": items[:ITEMS_PER_CALL]})
    check = requests.post(f"{url}/feedback/sklearn", data=body, headers=headers, timeout=30).json()
    if check["accepted"] != ITEMS_PER_CALL:
        raise SystemExit(f"/feedback refused bench items: {check['rejected'][:3]}")
    time.sleep(2)  # that call's items written before counting
    before = int(manage_shell(env, WRITTEN))
    started = time.monotonic()
    result = wrk(f"{url}/feedback/sklearn", body, headers, 2, tmp)
    accepted = result["requests"] * ITEMS_PER_CALL
    while True:  # until the writers caught up (or clearly cannot)
        written = int(manage_shell(env, WRITTEN)) - before
        if written >= accepted or time.monotonic() - started > SECONDS + 60:
            break
        time.sleep(0.5)
    elapsed = time.monotonic() - started
    say(
        f"/feedback ingestion: {result['rps'] * ITEMS_PER_CALL:,.0f} items/s accepted ({ITEMS_PER_CALL} per call, "
        f"c=2, p50 {result['p50']:.1f} ms, p99 {result['p99']:.1f} ms, errors {result['errors']}); "
        f"{written:,} of {accepted:,} written in {elapsed:.1f} s = {written / elapsed:,.0f} items/s written"
    )


def paced_feedback(
    url: str, headers: dict[str, str], items: list[dict], per_second: float, stop: threading.Event
) -> int:
    """One call of ``ITEMS_PER_CALL`` items every ``ITEMS_PER_CALL / per_second`` seconds until stopped."""
    body = json.dumps({"items": items[:ITEMS_PER_CALL]})
    session, calls = requests.Session(), 0
    period = ITEMS_PER_CALL / per_second
    while not stop.is_set():
        tick = time.monotonic()
        session.post(f"{url}/feedback/sklearn", data=body, headers=headers, timeout=30)
        calls += 1
        stop.wait(max(0.0, period - (time.monotonic() - tick)))
    return calls


def predict_cost(url: str, headers: dict[str, str], items: list[dict], tmp: Path) -> None:
    body = scoring_body(bench_rows()[1][:1])
    wrk(f"{url}/predict/sklearn", body, headers, 8, tmp, seconds=2)  # warm-up
    alone, both = [], []
    for _ in range(ROUNDS):
        alone.append(wrk(f"{url}/predict/sklearn", body, headers, 8, tmp)["rps"])
        stop = threading.Event()
        rate = alone[-1]  # the truth of every prediction comes back
        sender = threading.Thread(target=paced_feedback, args=(url, headers, items, rate, stop), daemon=True)
        sender.start()
        both.append(wrk(f"{url}/predict/sklearn", body, headers, 8, tmp)["rps"])
        stop.set()
        sender.join()
    loss = 1 - statistics.median(both) / statistics.median(alone)
    verdict = "within" if loss <= 0.10 else "ABOVE"
    say(
        f"/predict one row c=8: {statistics.median(alone):,.0f} req/s alone, {statistics.median(both):,.0f} req/s "
        f"with one feedback item per prediction alongside (medians of {ROUNDS} rounds): "
        f"loss {loss * 100:.1f} % ({verdict} the 10 % target); rounds alone {alone}, with feedback {both}"
    )


def main() -> None:
    from bench.run import prepare

    tmp = Path(tempfile.mkdtemp(prefix="bench-feedback-"))
    server = MlflowServer(tmp / "mlflow").start()
    servers: Servers | None = None
    try:
        env = prepare(server, tmp)
        token = manage_shell(env, TOKEN)
        servers = Servers(env, tmp)
        _, port = servers.gunicorn("gunicorn-feedback.log")
        url = f"http://127.0.0.1:{port}"
        headers = {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}
        items = seed(url, headers)
        ingestion(url, env, headers, items, tmp)
        predict_cost(url, headers, items, tmp)
        say(f"load average {os.getloadavg()[0]:.1f} at the end (above ~1 the machine was shared)")
    finally:
        if servers is not None:
            servers.stop_all()
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
