"""Real gunicorn with two workers: stickiness across workers and a restart, promotion under load.

gunicorn cannot see pytest's in-memory test database, so these tests give it a SQLite file of
its own, configured through ``manage.py`` in subprocesses, exactly as an operator would.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
import requests

from routing.serving.table import VariantRoute, make_route, pick_sticky
from tests.mlflow_server import REPO, free_port, wait_http
from tests.routing.helpers import breast_rows

pytestmark = [pytest.mark.single_pass("postgresql"), pytest.mark.slow]

SETUP = """
from registry.services import registry_sync
from registry.models import ModelVersion
from routing.models import Endpoint, Variant
from routing.governance.tokens import service_token_create
registry_sync(model_name="test-shared")
v1 = ModelVersion.objects.get(registered_model__name="test-shared", version=1)
v2 = ModelVersion.objects.get(registered_model__name="test-shared", version=2)
ep = Endpoint.objects.create(name="live", registered_model=v1.registered_model)
Variant.objects.create(endpoint=ep, name="champ", role="champion", model_version=v1, weight=70)
Variant.objects.create(endpoint=ep, name="chall", role="challenger", model_version=v2, weight=30)
print(service_token_create(actor="system", name="t", all_endpoints=True, rate_limit_per_second=0)[1])
"""

SHIFT = """
from routing.models import Variant
Variant.objects.filter(name="champ").update(weight=0)
Variant.objects.filter(name="chall").update(weight=100)
"""


class Gunicorn:
    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.env, self.log = env, log
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None

    def start(self) -> Gunicorn:
        cmd = [
            sys.executable, "-m", "gunicorn", "-c", str(REPO / "controlplane/gunicorn.conf.py"),
            "--bind", f"127.0.0.1:{self.port}", "--workers", "2", "controlplane.wsgi:application",
        ]  # fmt: skip
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                cmd, env=self.env, cwd=REPO, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        wait_http(f"{self.url}/healthz", 120, self.proc)
        return self

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=30)


@pytest.fixture
def live(mlflow_server, trained_models, tmp_path):
    env = dict(
        os.environ,
        DJANGO_SETTINGS_MODULE="controlplane.settings",
        DJANGO_SECRET_KEY="gunicorn-test-secret",
        CONTROLPLANE_VAR_DIR=str(tmp_path / "var"),
        DATABASE_URL=f"sqlite:///{tmp_path / 'live.sqlite3'}",
        MLFLOW_TRACKING_URI=mlflow_server.url,
        PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "prom"),
        ROUTING_REFRESH_SECONDS="0.5",
    )
    env.pop("MLFLOW_REGISTRY_URI", None)
    (tmp_path / "prom").mkdir()

    def manage(*args: str) -> str:
        done = subprocess.run(
            [sys.executable, "manage.py", *args],
            env=env,
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        return done.stdout

    manage("migrate", "-v0")
    token = manage("shell", "-c", SETUP).strip().splitlines()[-1]
    server = Gunicorn(env, tmp_path / "gunicorn.log")
    yield server, token, manage
    server.stop()


def _post(url: str, token: str, key: str | None) -> requests.Response:
    columns, rows = breast_rows(1)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    if key:
        headers["X-Unit-Key"] = key
    # A new connection per call, so calls spread over both workers.
    return requests.post(
        f"{url}/predict/live",
        data=json.dumps({"dataframe_split": {"columns": columns, "data": rows}}),
        headers={**headers, "Connection": "close"},
        timeout=30,
    )


def _expected(keys: list[str]) -> dict[str, str]:
    route = make_route(
        "live",
        True,
        [
            VariantRoute("champ", "champion", 70, 0, "test-shared", 1, None),
            VariantRoute("chall", "challenger", 30, 0, "test-shared", 2, None),
        ],
    )
    return {k: pick_sticky(route, k).name for k in keys}


def test_a_unit_keeps_its_variant_across_workers_and_a_restart(live):
    server, token, _ = live
    server.start()
    keys = [f"unit-{i}" for i in range(60)]
    expected = _expected(keys)
    assert set(expected.values()) == {"champ", "chall"}
    for _ in range(2):
        for key in keys:
            response = _post(server.url, token, key)
            assert response.status_code == 200, response.text
            assert response.headers["X-Variant"] == expected[key]
    server.stop()
    server.start()
    for key in keys:
        assert _post(server.url, token, key).headers["X-Variant"] == expected[key]


def test_a_weight_shift_under_load_reaches_every_worker_within_two_seconds_without_a_failure(live):
    server, token, manage = live
    server.start()
    results: list[tuple[float, int, str]] = []
    stop = threading.Event()

    def hammer() -> None:
        while not stop.is_set():
            response = _post(server.url, token, None)
            results.append(
                (time.monotonic(), response.status_code, response.headers.get("X-Model-Version", ""))
            )

    threads = [threading.Thread(target=hammer) for _ in range(4)]
    for t in threads:
        t.start()
    time.sleep(2)
    manage("shell", "-c", SHIFT)
    switched = time.monotonic()
    time.sleep(4)
    stop.set()
    for t in threads:
        t.join()
    assert results and Counter(status for _, status, _ in results) == {200: len(results)}
    before = Counter(v for at, _, v in results if at < switched)
    after = Counter(v for at, _, v in results if at > switched + 2.0)
    assert before["1"] > 0 and before["2"] > 0
    assert after and set(after) == {"2"}, after
