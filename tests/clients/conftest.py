"""A running control plane for the client's end-to-end tests: real gunicorn on a SQLite file,
configured through ``manage.py`` in subprocesses as an operator would, against the session's
real MLflow server.

``live_control_plane`` (one per test package run) gives the URL, a service token allowed to force variants,
the API tokens of an admin (``ops``) and a data scientist (``dana``), and one fresh registered
model per test (versions 1 and 3 scikit-learn, 2 XGBoost), already mirrored.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from controlplane_client import ControlPlane, ControlPlaneError

from tests.mlflow_server import REPO, free_port, wait_http
from tests.routing.helpers import breast_rows, make_model

MODELS_PER_PACKAGE = 4

SETUP = """
import json
from django.contrib.auth.models import Group, User
from rest_framework.authtoken.models import Token
from registry.services import registry_sync
for name in MODELS:
    registry_sync(model_name=name)
ops = User.objects.create_superuser("ops", password="pw-ops")
dana = User.objects.create_user("dana", password="pw-dana")
dana.groups.add(Group.objects.get(name="data scientist"))
print(json.dumps({"ops": Token.objects.create(user=ops).key, "dana": Token.objects.create(user=dana).key}))
"""


@dataclass
class LiveControlPlane:
    """A control plane under gunicorn and what a client needs to reach it."""

    url: str
    service_token: str
    ops_token: str
    scientist_token: str
    models: list[str]
    log: Path
    manage: Callable[..., str]  # ``manage.py ARGS`` against the same database; its last line
    database: Path

    def model(self) -> str:
        """A registered model no other test uses (MLflow aliases stay apart); one per test."""
        return self.models.pop()

    def pushes_applied(self, timeout: float = 60) -> None:
        """Wait until the control plane's worker pushed every alias change to MLflow (the outbox)."""
        deadline = time.monotonic() + timeout
        while True:
            with sqlite3.connect(self.database) as db:
                (open_pushes,) = db.execute(
                    "SELECT COUNT(*) FROM routing_aliaspush WHERE status != 'applied'"
                ).fetchone()
            if not open_pushes:
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"{open_pushes} alias push(es) not applied; see {self.log.parent}")
            time.sleep(0.2)

    def wait_until_served(self, endpoint: str, variant: str) -> None:
        """A new variant serves once the worker's table refreshed and loaded it (about a second)."""
        cp = ControlPlane(self.url, token=self.service_token)
        columns, rows = breast_rows(1)
        deadline = time.monotonic() + 120
        while True:
            try:
                cp.predict(endpoint, {"dataframe_split": {"columns": columns, "data": rows}}, variant=variant)
                return
            except ControlPlaneError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)

    def env(self, **extra: str) -> dict[str, str]:
        """The environment of an ``mlflow deployments`` subprocess acting as the data scientist."""
        return {
            **os.environ,
            "CONTROLPLANE_URL": self.url,
            "CONTROLPLANE_TOKEN": self.service_token,
            "CONTROLPLANE_API_TOKEN": self.scientist_token,
            **extra,
        }


@pytest.fixture(scope="package")
def live_control_plane(mlflow_server, trained_models, tmp_path_factory) -> Iterator[LiveControlPlane]:
    tmp = tmp_path_factory.mktemp("client-e2e")
    env = dict(
        os.environ,
        DJANGO_SETTINGS_MODULE="controlplane.settings",
        DJANGO_SECRET_KEY="client-e2e-secret",
        CONTROLPLANE_VAR_DIR=str(tmp / "var"),
        DATABASE_URL=f"sqlite:///{tmp / 'cp.sqlite3'}",
        MLFLOW_TRACKING_URI=mlflow_server.url,
        PROMETHEUS_MULTIPROC_DIR=str(tmp / "prom"),
        ROUTING_REFRESH_SECONDS="0.5",
        GUNICORN_WORKERS="1",
        # Its own Celery broker, as under `make run` (a folder), so the session's workers on
        # Redis never take this control plane's tasks.
        CELERY_BROKER_URL="filesystem://",
    )
    env.pop("MLFLOW_REGISTRY_URI", None)
    (tmp / "prom").mkdir()

    def manage(*args: str) -> str:
        done = subprocess.run(
            [sys.executable, "manage.py", *args],
            env=env,
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, f"{args[0]}: {done.stdout[-2000:]}\n{done.stderr[-1500:]}"
        return (done.stdout.strip().splitlines() or [""])[-1]  # what a command prints last

    client = mlflow_server.client()
    models = [make_model(client, trained_models, sync=False).name for _ in range(MODELS_PER_PACKAGE)]
    manage("migrate", "-v0")
    tokens = json.loads(manage("shell", "-c", f"MODELS = {models!r}\n{SETUP}"))
    service_token = manage("create_service_token", "e2e-client", "--all-endpoints", "--can-override")
    port, log = free_port(), tmp / "gunicorn.log"
    cmd = [sys.executable, "-m", "gunicorn", "-c", str(REPO / "controlplane/gunicorn.conf.py"),
           "--bind", f"127.0.0.1:{port}", "controlplane.wsgi:application"]  # fmt: skip
    worker_cmd = [sys.executable, "-m", "celery", "-A", "controlplane", "worker", "--concurrency", "1",
                  "--loglevel", "INFO", "--without-gossip", "--without-mingle", "--without-heartbeat"]  # fmt: skip
    procs = []
    for args, out_path in ((cmd, log), (worker_cmd, tmp / "worker.log")):
        with open(out_path, "ab") as out:
            procs.append(
                subprocess.Popen(
                    args, env=env, cwd=REPO, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
                )
            )
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz", 120, procs[0])
        yield LiveControlPlane(
            f"http://127.0.0.1:{port}",
            service_token,
            tokens["ops"],
            tokens["dana"],
            models,
            log,
            manage,
            tmp / "cp.sqlite3",
        )
    finally:
        for proc in procs:
            os.killpg(proc.pid, signal.SIGTERM)
        for proc in procs:
            proc.wait(timeout=30)
