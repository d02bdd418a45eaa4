"""A real Prometheus scraping the control plane under gunicorn with two workers.

The test sends normal traffic, kills one worker, sends drifted traffic (one feature shifted),
runs compute_drift, and then asks Prometheus: the request counts it sees equal the requests
sent (multiprocess aggregation, a dead worker's counts kept), only the shifted feature's PSI is
above 0.2, and every expression of the dashboards and alert rules evaluates without error.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from sklearn.datasets import load_breast_cancer

from tests.conftest import clone_version, require_tool
from tests.mlflow_server import REPO, free_port, wait_http
from tests.monitoring.test_rules_and_dashboards import (
    RULE_FILES,
    dashboard_expressions,
    grafana_to_promql,
    rule_expressions,
)

pytestmark = [pytest.mark.single_pass("postgresql"), pytest.mark.slow, pytest.mark.timeout(900)]

MODEL = "monitoring-integration"
ENDPOINT = "demo"
SHIFTED = "mean radius"
ROWS_PER_REQUEST = 14
BAD_REQUESTS = 5
# Series that only exist after a shadow, a fallback, a lost log row or a database error, none of which this
# scenario provokes; their expressions must still evaluate without error.
# The drifted window must hold every drifted row (sent, flushed, command started: well under
# 30 s) and none of the normal rows (at least 35 s older).
DRIFT_WINDOW_SECONDS = 30
DRIFT_GAP_SECONDS = 35
MAY_BE_EMPTY = (
    "Shadow agreement",
    "Shadow predictions",
    "Fallbacks",
    "Dropped prediction-log rows",
    "Database query rate and errors / B",  # django_db_errors_total: no database error here
    # Recorded by Celery workers, which this stack does not run (drift runs as a command here);
    # tests/tasks checks them on real workers.
    "Task runs by outcome",
    "Task duration p50 / p95",
    # No rollout plan runs on this stack (tests/delivery checks the gauges and counters).
    "Rollout step: challenger share",
    "Rollout checks by result",
    "Rollbacks and time past deadline",
    "Bandit: share per arm",
    "Bandit: probability best per arm",
    "Bandit: regret and outcomes",
)


@dataclass
class Stack:
    app_url: str
    prometheus_url: str
    token: str
    env: dict[str, str]
    db_path: Path
    gunicorn: subprocess.Popen


def _manage(env: dict[str, str], *args: str) -> str:
    # Management commands run outside the multiprocess directory, like make run's jobs.
    clean = {k: v for k, v in env.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    result = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=REPO, env=clean, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, f"manage.py {' '.join(args)}: {result.stdout}{result.stderr}"
    return result.stdout


def _register_versions(mlflow_server, trained_models) -> None:
    """Two versions (scikit-learn, XGBoost) of a model of our own, reusing the session's runs."""
    client = mlflow_server.client()
    client.create_registered_model(MODEL)
    for name, version in (
        (trained_models.sklearn_name, trained_models.sklearn_version),
        (trained_models.xgboost_name, trained_models.xgboost_version),
    ):
        clone_version(client, MODEL, client.get_model_version(name, str(version)))


def _start(cmd: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    with open(log, "wb") as fh:
        return subprocess.Popen(cmd, cwd=REPO, env=env, stdout=fh, stderr=subprocess.STDOUT)


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _prometheus_config(tmp: Path, app_port: int) -> Path:
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(p) for p in RULE_FILES],
        "scrape_configs": [
            {
                "job_name": "controlplane",
                "metrics_path": "/metrics",
                "static_configs": [{"targets": [f"127.0.0.1:{app_port}"]}],
            }
        ],
    }
    path = tmp / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture(scope="module")
def stack(mlflow_server, trained_models, tmp_path_factory) -> Iterator[Stack]:
    prometheus = require_tool("prometheus", "the integration test scrapes with a real Prometheus")
    tmp = tmp_path_factory.mktemp("prometheus-integration")
    (tmp / "var").mkdir()
    (tmp / "multiproc").mkdir()
    db_path = tmp / "controlplane.sqlite3"
    app_port, prom_port = free_port(), free_port()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "controlplane.settings",
        "DJANGO_SECRET_KEY": "prometheus-integration-test-key-0123456789",
        "DJANGO_DEBUG": "false",
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
        "DATABASE_URL": f"sqlite:///{db_path}",
        "CONTROLPLANE_VAR_DIR": str(tmp / "var"),
        "MLFLOW_TRACKING_URI": mlflow_server.url,
        "PROMETHEUS_MULTIPROC_DIR": str(tmp / "multiproc"),
        "GUNICORN_WORKERS": "2",
        "DEFAULT_ENDPOINT": ENDPOINT,
    }
    _register_versions(mlflow_server, trained_models)
    _manage(env, "migrate", "--noinput")
    _manage(env, "demo", "--model", MODEL, "--endpoint", ENDPOINT)
    # The demo token gains the feedback scope (and the endpoint an experiment), as under make run.
    _manage(env, "demo_experiment", "--endpoint", ENDPOINT)
    token = (tmp / "var" / "demo_token").read_text().strip()

    cmd = [sys.executable, "-m", "gunicorn", "controlplane.wsgi:application"]
    conf = REPO / "controlplane" / "gunicorn.conf.py"
    if conf.exists():
        cmd += ["-c", str(conf)]
    cmd += ["--workers", "2", "--bind", f"127.0.0.1:{app_port}"]
    gunicorn = _start(cmd, env, tmp / "gunicorn.log")
    prom = None
    try:
        wait_http(f"http://127.0.0.1:{app_port}/readyz", 120, gunicorn)
        prom = _start(
            [
                prometheus,
                f"--config.file={_prometheus_config(tmp, app_port)}",
                f"--storage.tsdb.path={tmp / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{prom_port}",
            ],
            env,
            tmp / "prometheus.log",
        )
        wait_http(f"http://127.0.0.1:{prom_port}/-/ready", 60, prom)
        yield Stack(
            f"http://127.0.0.1:{app_port}", f"http://127.0.0.1:{prom_port}", token, env, db_path, gunicorn
        )
    finally:
        if prom is not None:
            _stop(prom)
        _stop(gunicorn)


def _post(stack: Stack, body: dict) -> int:
    request = urllib.request.Request(
        f"{stack.app_url}/predict/{ENDPOINT}",
        data=json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {stack.token}", "Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def _send(stack: Stack, shift_sd: float) -> int:
    """Every row of the data set once, in requests of a few rows, from four threads."""
    frame = load_breast_cancer(as_frame=True).data
    frame[SHIFTED] = frame[SHIFTED] + shift_sd * frame[SHIFTED].std()
    bodies = [
        {"dataframe_split": {"columns": list(frame.columns), "data": chunk.values.tolist()}}
        for chunk in (frame.iloc[i : i + ROWS_PER_REQUEST] for i in range(0, len(frame), ROWS_PER_REQUEST))
    ]
    with ThreadPoolExecutor(4) as pool:
        statuses = list(pool.map(lambda b: _post(stack, b), bodies))
    assert statuses == [200] * len(bodies)
    return len(bodies)


def _send_ground_truth(stack: Stack, requests_: int = 60) -> None:
    """Labels for the first rows of logged requests through /feedback, then quality, then the scrape."""
    with sqlite3.connect(stack.db_path, timeout=20) as db:
        logged = db.execute(
            "SELECT request_id, outputs FROM routing_predictionlog WHERE is_shadow = 0 LIMIT ?", (requests_,)
        ).fetchall()
    items = [{"request_id": rid, "row": 0, "label": json.loads(outputs)[0]} for rid, outputs in logged]
    request = urllib.request.Request(
        f"{stack.app_url}/feedback/{ENDPOINT}",
        data=json.dumps({"items": items}).encode(),
        headers={"Authorization": f"Bearer {stack.token}", "Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        assert json.load(response)["accepted"] == len(items)

    def written() -> tuple[bool, int]:
        with sqlite3.connect(stack.db_path, timeout=20) as db:
            n = db.execute("SELECT count(*) FROM experiments_feedback").fetchone()[0]
        return n == len(items), n

    _wait_for("feedback to be written", written)
    _manage(stack.env, "compute_quality", "--endpoint", ENDPOINT)
    _wait_for(
        "Prometheus to scrape the variant quality",
        lambda: (
            (
                v := _value(
                    stack, f'max(controlplane_variant_quality{{endpoint="{ENDPOINT}",metric="accuracy"}})'
                )
            )
            == 1.0,
            v,
        ),
    )


def _logged_requests(stack: Stack) -> int:
    with sqlite3.connect(stack.db_path, timeout=20) as db:
        return db.execute("SELECT count(*) FROM routing_predictionlog WHERE is_shadow = 0").fetchone()[0]


def _wait_for(what: str, check, timeout: float = 60):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        ok, last = check()
        if ok:
            return last
        time.sleep(0.5)
    raise AssertionError(f"{what}: still {last!r} after {timeout}s")


def _query(stack: Stack, expr: str) -> dict:
    url = f"{stack.prometheus_url}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return json.load(response)
    except urllib.error.HTTPError as exc:
        return json.load(exc)


def _value(stack: Stack, expr: str) -> float | None:
    result = _query(stack, expr)["data"]["result"]
    return float(result[0]["value"][1]) if result else None


def _kill_one_worker(stack: Stack) -> None:
    """SIGKILL a worker: its counters must survive in the multiprocess files."""
    master = stack.gunicorn.pid
    children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    assert len(children) == 2, children
    os.kill(int(children[0]), signal.SIGKILL)

    def respawned() -> tuple[bool, list[str]]:
        now = Path(f"/proc/{master}/task/{master}/children").read_text().split()
        return len(now) == 2 and children[0] not in now, now

    _wait_for("gunicorn to replace the killed worker", respawned)
    wait_http(f"{stack.app_url}/readyz", 120, stack.gunicorn)


def _champion(stack: Stack) -> str:
    with sqlite3.connect(stack.db_path, timeout=20) as db:
        return db.execute(
            "SELECT v.name FROM routing_variant v JOIN routing_endpoint e ON v.endpoint_id = e.id "
            "WHERE e.name = ? AND v.role = 'champion'",
            (ENDPOINT,),
        ).fetchone()[0]


def test_prometheus_sees_every_request_drift_on_the_shifted_feature_and_evaluates_every_panel_and_rule(
    stack,
):
    # Normal traffic, a few bad requests, then a worker dies.
    sent = _send(stack, shift_sd=0.0)
    bad = {"dataframe_split": {"columns": ["not a feature"], "data": [[1.0]]}}
    assert [_post(stack, bad) for _ in range(BAD_REQUESTS)] == [400] * BAD_REQUESTS
    _wait_for(
        "prediction log to be written", lambda: (_logged_requests(stack) == sent, _logged_requests(stack))
    )
    normal_done = time.monotonic()
    _kill_one_worker(stack)

    champion = _champion(stack)
    champ = f'endpoint="{ENDPOINT}",variant="{champion}"'
    _manage(stack.env, "compute_drift", "--endpoint", ENDPOINT, "--window", "10m")
    _wait_for(
        "Prometheus to scrape the drift of normal traffic",
        lambda: ((v := _value(stack, f"controlplane_drift_samples{{{champ}}}")) is not None, v),
    )
    assert _value(stack, f"max(controlplane_feature_drift_psi{{{champ}}})") < 0.2
    assert _value(stack, f"controlplane_prediction_drift_psi{{{champ}}}") < 0.2

    # Drifted traffic, old enough rows left out of the next window: only the shifted feature moves.
    time.sleep(max(0.0, DRIFT_GAP_SECONDS - (time.monotonic() - normal_done)))
    sent += _send(stack, shift_sd=1.5)
    _wait_for(
        "prediction log to be written", lambda: (_logged_requests(stack) == sent, _logged_requests(stack))
    )
    _manage(stack.env, "compute_drift", "--endpoint", ENDPOINT, "--window", f"{DRIFT_WINDOW_SECONDS}s")

    total = sent + BAD_REQUESTS
    selector = f'endpoint="{ENDPOINT}"'
    _wait_for(
        "Prometheus to count every request",
        lambda: (
            (v := _value(stack, f"sum(controlplane_predictions_total{{{selector}}})")) == total,
            v,
        ),
    )
    assert (
        _value(stack, f'sum(controlplane_predictions_total{{{selector},outcome="client_error"}})')
        == BAD_REQUESTS
    )
    assert _value(stack, f'sum(controlplane_predictions_total{{{selector},outcome="success"}})') == sent
    assert _value(stack, f"sum(controlplane_request_latency_seconds_count{{{selector}}})") == total
    assert _value(stack, f"sum(controlplane_prediction_latency_seconds_count{{{selector}}})") == sent

    _wait_for(
        "Prometheus to scrape the new drift",
        lambda: (
            (v := _value(stack, f'controlplane_feature_drift_psi{{{champ},feature="{SHIFTED}"}}')) is not None
            and v > 0.2,
            v,
        ),
    )
    assert _value(stack, f'max(controlplane_feature_drift_psi{{{champ},feature!="{SHIFTED}"}})') < 0.2
    assert _value(stack, f"controlplane_drift_samples{{{champ}}}") > 400
    assert _value(stack, f'controlplane_drift_reference_info{{{champ},reference_kind="training"}}') == 1
    assert _value(stack, f"sum(controlplane_traffic_weight{{{selector}}})") == pytest.approx(1.0)

    _send_ground_truth(stack)

    # The merged exposition of both workers (and the dead one's counters) is clean for promtool.
    promtool = require_tool("promtool", "checks the multiprocess /metrics exposition")
    with urllib.request.urlopen(f"{stack.app_url}/metrics", timeout=30) as response:
        exposition = response.read()
    check = subprocess.run([promtool, "check", "metrics"], input=exposition, capture_output=True, timeout=60)
    assert (check.returncode, check.stdout, check.stderr) == (0, b"", b""), check.stdout + check.stderr

    # Give the recording rules and rate() windows a few samples, then evaluate everything.
    time.sleep(5)
    errors, empty = [], []
    expressions = {
        **{f"rule {k}": v for k, v in rule_expressions().items()},
        **{f"dashboard {k}": grafana_to_promql(v, ENDPOINT) for k, v in dashboard_expressions().items()},
    }
    for where, expr in expressions.items():
        answer = _query(stack, expr)
        if answer.get("status") != "success" or answer.get("warnings"):
            errors.append((where, answer.get("error"), answer.get("warnings")))
        elif not answer["data"]["result"]:
            empty.append(where)
    assert not errors, errors
    # Alerts are quiet on a healthy stack; every recording rule and dashboard panel has data.
    must_have_data = [
        w
        for w in empty
        if not w.startswith("rule Controlplane") and not any(f"/ {name}" in w for name in MAY_BE_EMPTY)
    ]
    assert not must_have_data, must_have_data
