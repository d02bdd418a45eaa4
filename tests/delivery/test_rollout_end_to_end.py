"""Rollout plans on the real stack: MLflow server, gunicorn serving /predict, a Celery beat and worker
on Redis running the controller every second, all on a site database of their own.

- A good challenger walks every step and becomes champion; MLflow's champion alias moves to it and
  the audit trail shows each step by the actor ``rollout`` with its checks.
- A bad challenger (every prediction fails) is rolled back at its first step while clients keep
  calling /predict: not one request fails (the champion answers for it), and the aliases end where
  they started.
- A challenger that answers but with worse accuracy (trained on shuffled labels), with feedback
  flowing through /feedback and the plan requiring the experiment's decided verdict, is held until
  the experiment calls it "worse", then rolled back at that step: no failed /predict request, aliases
  where they started.
- With approval required, the plan stops at "awaiting approval"; its starter cannot approve it, a
  second person (an approver, through the API) does, and MLflow's champion alias moves.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter, deque
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import requests

from tests.celery_workers import CeleryRig
from tests.conftest import load_script
from tests.delivery.conftest import aliases
from tests.mlflow_server import REPO
from tests.routing.helpers import make_model
from tests.routing.serving.gunicorn_rig import Gunicorn, Site, predict, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.single_pass("postgresql")]  # its own SQLite site: either pass

SETUP = """
import os
from django.contrib.auth.models import Group, User
from rest_framework.authtoken.models import Token
from registry.services import registry_sync
from routing.governance.services import endpoint_create
from routing.governance.tokens import service_token_create
registry_sync(model_name=os.environ["SETUP_MODEL"])
endpoint_create(actor="system", name="live", model_name=os.environ["SETUP_MODEL"], champion_version=1, reason="e2e")
print(service_token_create(actor="system", name="t", all_endpoints=True, rate_limit_per_second=0,
                           scopes=["predict", "feedback"])[1])
admin = User.objects.create_superuser("release", password="pw-release")
print(Token.objects.create(user=admin).key)
for name, roles in (("dana", ["data scientist", "approver"]), ("abel", ["approver"])):
    person = User.objects.create_user(name, password="pw-" + name, is_staff=True)
    person.groups.add(*Group.objects.filter(name__in=roles))
    print(Token.objects.create(user=person).key)
"""


def _register_failing_version(name: str) -> int:
    from mlflow.models import infer_signature
    from sklearn.datasets import load_breast_cancer

    import mlflow

    data = load_breast_cancer(as_frame=True)
    signature = infer_signature(data.data.head(20), data.target.head(20).to_numpy())
    with mlflow.start_run():
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=str(Path(__file__).with_name("failing_model.py")),
            signature=signature,
            registered_model_name=name,
        )
    return int(info.registered_model_version)


class Traffic(threading.Thread):
    """Clients calling /predict/live without pause until stopped; every answer's status counted."""

    def __init__(self, url: str, token: str) -> None:
        super().__init__(daemon=True)
        self.url, self.token = url, token
        self.statuses: Counter[int] = Counter()
        self.variants: Counter[str] = Counter()
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.is_set():
            try:
                answer = predict(self.url, self.token, None)
                self.statuses[answer.status_code] += 1
                self.variants[answer.headers.get("X-Variant", "")] += 1
            except requests.RequestException:
                self.statuses[0] += 1
            time.sleep(0.01)

    def stop(self) -> Counter[int]:
        self.stopped.set()
        self.join(timeout=30)
        return self.statuses


def _register_worse_version(name: str) -> int:
    """The champion's pipeline trained on shuffled labels: it loads and answers, but wrongly."""
    import mlflow.sklearn
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    sk = load_script("train_sklearn")
    x_train, x_val, y_train, y_val = sk.load_data()
    shuffled = np.random.default_rng(0).permutation(y_train.to_numpy())
    worse = Pipeline([("scale", StandardScaler()), ("clf", LogisticRegression(max_iter=1000))]).fit(
        x_train, shuffled
    )
    return int(
        sk.log_and_register(
            name, worse, mlflow.sklearn, {"model": "shuffled_labels"}, (x_train, x_val, y_val)
        )
    )


class LabelledTraffic(Traffic):
    """Clients scoring real rows on /predict/live and, two seconds later (the prediction log is
    written by then), sending every row's true label to /feedback/live, as the demo client does."""

    ROWS = 10
    DELAY = 2.0

    def __init__(self, url: str, token: str) -> None:
        super().__init__(url, token)
        from sklearn.datasets import load_breast_cancer

        data = load_breast_cancer(as_frame=True)
        self.columns = list(data.data.columns)
        self.rows, self.labels = data.data.to_numpy().tolist(), data.target.tolist()
        self.feedback: Counter[str] = Counter()
        self.pending: deque[tuple[float, dict]] = deque()
        self.rng = np.random.default_rng(0)
        self.session = requests.Session()
        self.session.headers.update({"Authorization": f"Bearer {token}", "Content-Type": "application/json"})

    def run(self) -> None:
        while not self.stopped.is_set():
            picked = self.rng.integers(len(self.rows), size=self.ROWS).tolist()
            body = {"dataframe_split": {"columns": self.columns, "data": [self.rows[i] for i in picked]}}
            try:
                answer = self.session.post(f"{self.url}/predict/live", json=body, timeout=10)
            except requests.RequestException:
                self.statuses[0] += 1
                continue
            self.statuses[answer.status_code] += 1
            self.variants[answer.headers.get("X-Variant", "")] += 1
            now = time.monotonic()
            if answer.status_code == 200:
                request_id = answer.json()["request_id"]
                for row, i in enumerate(picked):
                    self.pending.append(
                        (now, {"request_id": request_id, "row": row, "label": self.labels[i]})
                    )
            due = []
            while self.pending and now - self.pending[0][0] >= self.DELAY:
                due.append(self.pending.popleft()[1])
            if due:
                self._send(due)
            time.sleep(0.02)

    def _send(self, items: list[dict]) -> None:
        try:
            answer = self.session.post(f"{self.url}/feedback/live", json={"items": items}, timeout=10)
        except requests.RequestException:
            self.feedback["unreachable"] += len(items)
            return
        if answer.status_code != 200:
            self.feedback[f"http {answer.status_code}"] += len(items)
            return
        self.feedback["accepted"] += answer.json()["accepted"]
        self.feedback["rejected"] += len(answer.json()["rejected"])


@dataclass
class Stack:
    model: str
    bad_version: int  # every prediction fails
    worse_version: int  # answers, with worse accuracy
    server: Gunicorn
    token: str  # service token: predict and feedback on every endpoint
    api: requests.Session  # a superuser
    scientist: requests.Session  # dana, data scientist who may also approve (others' promotions)
    approver: requests.Session  # abel, approver


def _session(token: str) -> requests.Session:
    session = requests.Session()
    session.headers["Authorization"] = f"Token {token}"
    return session


@pytest.fixture
def stack(tmp_path, mlflow_server, trained_models, celery_rig: CeleryRig):
    model = make_model(mlflow_server.client(), trained_models, layout="ss", sync=False)
    bad_version = _register_failing_version(model.name)
    worse_version = _register_worse_version(model.name)
    queue = f"e2e-{uuid.uuid4().hex[:8]}"
    (tmp_path / "prom").mkdir()
    env = {
        **celery_rig.env,
        "DJANGO_SECRET_KEY": "rollout-e2e-secret",
        "CONTROLPLANE_VAR_DIR": str(tmp_path / "var"),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'site.sqlite3'}",
        "MLFLOW_TRACKING_URI": mlflow_server.url,
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "prom"),
        "ROUTING_REFRESH_SECONDS": "0.5",
        "ROLLOUT_TICK_SECONDS": "1",
        "SCHEDULE_ANALYZE_EXPERIMENTS_SECONDS": "10",  # the shortest the setting allows
        "CELERY_QUEUE": queue,
        "WORKER_HEARTBEAT_SECONDS": "2",
    }
    site = Site(env, tmp_path)
    site.manage("migrate", "-v0")
    tokens = site.manage("shell", "-c", SETUP, env={"SETUP_MODEL": model.name}).split()[-4:]
    service_token, api_token, scientist_token, approver_token = tokens
    server = Gunicorn(site, workers=2).start()
    worker = celery_rig.start_worker(f"e2e-{queue}", queues=[queue], **env)
    beat_log = tmp_path / "beat.log"
    with open(beat_log, "wb") as out:
        beat = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "controlplane", "beat", "--loglevel", "INFO",
             "-s", str(tmp_path / "beat-schedule")],
            env=env, cwd=REPO, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    worker.wait_ready()
    try:
        yield Stack(
            model.name, bad_version, worse_version, server, service_token,
            _session(api_token), _session(scientist_token), _session(approver_token),
        )  # fmt: skip
    finally:
        os.killpg(beat.pid, signal.SIGTERM)
        beat.wait(timeout=30)
        worker.stop()
        server.stop()


def _plan(api: requests.Session, url: str, version: int, **overrides: object) -> dict:
    body = {
        "endpoint": "live",
        "version": version,
        "steps": [10, 50],
        "bake_seconds": 2,
        "checks": {"min_requests": {"count": 15}, "error_rate": {"max_increase": 0.02}, "workers_loaded": {}},
        "reason": f"canary v{version}",
        **overrides,
    }
    answer = api.post(f"{url}/api/v1/rollouts/", json=body, timeout=30)
    assert answer.status_code == 201, answer.text
    return answer.json()


def _aliases_become(mlflow_server, model: str, expected: dict[str, int]) -> None:
    """MLflow's aliases reach ``expected`` (a worker pushes them after the governance change commits)."""
    deadline = time.monotonic() + 30
    while (now := aliases(mlflow_server, model)) != expected and time.monotonic() < deadline:
        time.sleep(0.2)
    assert now == expected, f"MLflow aliases {now}, expected {expected}"


def _left_running(api: requests.Session, url: str, plan_id: int) -> dict | None:
    plan = api.get(f"{url}/api/v1/rollouts/{plan_id}/", timeout=30).json()
    return plan if plan["status"] != "running" else None


def _ended(api: requests.Session, url: str, plan_id: int) -> dict | None:
    plan = api.get(f"{url}/api/v1/rollouts/{plan_id}/", timeout=30).json()
    return plan if plan["status"] not in ("running", "awaiting_approval") else None


def test_a_good_challenger_walks_every_step_and_a_bad_one_rolls_back_with_no_failed_request(
    stack, mlflow_server
):
    model, bad_version, server, token, api = (
        stack.model,
        stack.bad_version,
        stack.server,
        stack.token,
        stack.api,
    )
    traffic = Traffic(server.url, token)
    traffic.start()
    wait_until(lambda: traffic.statuses[200] > 20, 60, "traffic flows")
    _aliases_become(mlflow_server, model, {"champion": 1})

    good = _plan(api, server.url, 2)
    done = wait_until(lambda: _ended(api, server.url, good["id"]), 180, "the good plan ends")

    assert done["status"] == "completed", done
    assert [(e["kind"], e["percent"]) for e in done["events"] if e["kind"] != "evaluated"] == [
        ("started", 10),
        ("advanced", 50),
        ("promoted", 100),
    ]
    _aliases_become(mlflow_server, model, {"champion": 2})
    trail = api.get(f"{server.url}/api/v1/audit-events/?endpoint=live&limit=1000", timeout=30).json()[
        "results"
    ]
    by_rollout = [(e["action"], e["reason"]) for e in trail if e["actor"] == "rollout"]
    assert {a for a, _ in by_rollout} == {"routing.traffic_split_set", "routing.endpoint_promoted"}
    assert all("error_rate pass" in r and "workers_loaded pass" in r for _, r in by_rollout), by_rollout

    bad = _plan(api, server.url, bad_version)
    done = wait_until(lambda: _ended(api, server.url, bad["id"]), 180, "the bad plan ends")
    time.sleep(2)  # requests after the rollback reach the champion alone
    statuses = traffic.stop()

    assert done["status"] == "rolled_back", done
    assert max(e["percent"] for e in done["events"]) == 10, "rolled back at its first step"
    failed = next(e for e in done["events"] if e["kind"] == "rolled_back")
    assert any(c["check"] == "error_rate" and c["result"] == "fail" for c in failed["checks"])
    assert set(statuses) == {200}, f"failed /predict requests for clients: {statuses}"
    _aliases_become(mlflow_server, model, {"champion": 2})
    endpoint = api.get(f"{server.url}/api/v1/endpoints/live/", timeout=30).json()
    assert {
        v["name"]: (v["role"], v["weight"])
        for v in endpoint["variants"]
        if v["role"] in ("champion", "challenger")
    } == {"v2": ("champion", 100)}
    print(f"e2e rollout: {sum(statuses.values())} requests, by variant {dict(traffic.variants)}")


def test_a_challenger_with_worse_accuracy_is_rolled_back_on_the_experiments_verdict_with_no_failed_request(
    stack, mlflow_server
):
    """Feedback flows through /feedback; the plan requires the experiment's decided verdict, so the
    step holds until the experiment has one, and "worse" rolls the challenger back at that step."""
    server, api = stack.server, stack.api
    traffic = LabelledTraffic(server.url, stack.token)
    traffic.start()
    wait_until(lambda: traffic.statuses[200] > 20, 60, "traffic flows")
    _aliases_become(mlflow_server, stack.model, {"champion": 1})

    checks = {
        "min_requests": {"count": 15},
        "error_rate": {"max_increase": 0.02},
        "experiment_verdict": {"required": True, "decided": True},
    }
    plan = _plan(api, server.url, stack.worse_version, steps=[50, 75], bake_seconds=1, checks=checks)
    _aliases_become(mlflow_server, stack.model, {"champion": 1, "challenger": stack.worse_version})
    experiment = api.post(
        f"{server.url}/api/v1/experiments/",
        json={
            "endpoint_name": "live", "name": "canary-accuracy", "primary_metric": "accuracy",
            "minimum_effect": 0.1, "challengers": [plan["variant"]], "baseline_mean": 0.95,
            "reason": "is the canary as accurate as the champion?",
        },
        timeout=30,
    )  # fmt: skip
    assert experiment.status_code == 201, experiment.text
    started = api.post(
        f"{server.url}/api/v1/experiments/{experiment.json()['id']}/start/",
        json={"reason": "canary"},
        timeout=30,
    )
    assert started.status_code == 200, started.text

    done = wait_until(lambda: _ended(api, server.url, plan["id"]), 240, "the worse plan ends")
    time.sleep(2)  # requests after the rollback reach the champion alone
    statuses = traffic.stop()

    assert done["status"] == "rolled_back", done
    assert {e["step_index"] for e in done["events"]} == {0}, "rolled back at the step that failed"
    assert {e["percent"] for e in done["events"] if e["kind"] != "rolled_back"} == {50}, done["events"]
    held = [e for e in done["events"] if e["kind"] == "evaluated"]
    assert held, "the step held until the experiment decided"
    failed = next(e for e in done["events"] if e["kind"] == "rolled_back")
    by_check = {c["check"]: c for c in failed["checks"]}
    assert by_check["experiment_verdict"]["result"] == "fail", failed
    assert "worse" in by_check["experiment_verdict"]["detail"], failed
    assert by_check["error_rate"]["result"] == "pass", "it answered: only its accuracy failed it"
    assert set(statuses) == {200}, f"failed /predict requests for clients: {statuses}"
    assert traffic.feedback["accepted"] > 100 and set(+traffic.feedback) == {"accepted"}, traffic.feedback
    assert traffic.variants[plan["variant"]] > 0, traffic.variants
    _aliases_become(mlflow_server, stack.model, {"champion": 1})
    endpoint = api.get(f"{server.url}/api/v1/endpoints/live/", timeout=30).json()
    assert {v["name"]: (v["role"], v["weight"]) for v in endpoint["variants"] if v["weight"]} == {
        "v1": ("champion", 100)
    }
    trail = api.get(f"{server.url}/api/v1/audit-events/?endpoint=live&limit=1000", timeout=30).json()[
        "results"
    ]
    retired = [e for e in trail if e["actor"] == "rollout" and "rolled back at step 1/2" in e["reason"]]
    assert retired and all("experiment_verdict fail" in e["reason"] for e in retired), retired
    print(
        f"e2e worse: {sum(statuses.values())} requests {dict(traffic.variants)}, feedback {dict(traffic.feedback)}"
    )


def test_with_approval_required_the_plan_waits_and_a_second_person_completes_it(stack, mlflow_server):
    server, dana, abel = stack.server, stack.scientist, stack.approver
    traffic = Traffic(server.url, stack.token)
    traffic.start()
    wait_until(lambda: traffic.statuses[200] > 20, 60, "traffic flows")

    plan = _plan(dana, server.url, 2, steps=[50], bake_seconds=1, approval_required=True)
    waiting = wait_until(lambda: _left_running(dana, server.url, plan["id"]), 120, "the plan ends its steps")
    assert waiting["status"] == "awaiting_approval", waiting
    assert waiting["promotion_request"] is not None
    time.sleep(3)  # a few more controller ticks: it waits, it does not promote by itself
    assert dana.get(f"{server.url}/api/v1/rollouts/{plan['id']}/", timeout=30).json()["status"] == (
        "awaiting_approval"
    )
    _aliases_become(mlflow_server, stack.model, {"champion": 1, "challenger": 2})

    # dana holds the approver role too, but four-eyes: whoever started the plan requested the promotion.
    own = dana.post(
        f"{server.url}/api/v1/rollouts/{plan['id']}/approve/", json={"reason": "lgtm"}, timeout=30
    )
    assert own.status_code == 403 and own.json()["error"]["code"] == "four_eyes", own.text
    approved = abel.post(
        f"{server.url}/api/v1/rollouts/{plan['id']}/approve/",
        json={"reason": "checked the canary"},
        timeout=30,
    )
    assert approved.status_code == 200, approved.text
    statuses = traffic.stop()

    done = approved.json()
    assert done["status"] == "completed", done
    assert [(e["kind"], e["actor"]) for e in done["events"] if e["kind"] != "evaluated"] == [
        ("started", "dana"),
        ("awaiting_approval", "rollout"),
        ("promoted", "abel"),
    ]
    _aliases_become(mlflow_server, stack.model, {"champion": 2})
    trail = stack.api.get(f"{server.url}/api/v1/audit-events/?endpoint=live&limit=1000", timeout=30).json()[
        "results"
    ]
    promoted = [e for e in trail if e["action"] == "routing.endpoint_promoted"]
    assert [e["actor"] for e in promoted] == ["abel"], [(e["action"], e["actor"]) for e in trail]
    assert set(statuses) == {200}, statuses
