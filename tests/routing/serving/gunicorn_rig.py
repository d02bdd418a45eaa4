"""A real gunicorn for the fault tests: its own database and model cache, signals, worker pids, logs.

gunicorn cannot see pytest's test database, so a site gets a database of its own (a SQLite file,
or a PostgreSQL database named by the test), configured through ``manage.py`` in subprocesses,
exactly as an operator would. ``test_predict_gunicorn`` has the simpler rig this one grew from.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import requests

from tests.mlflow_server import REPO, free_port, wait_http
from tests.routing.helpers import breast_rows

# The endpoint "live" serves test-shared: the scikit-learn v1 as champion, the XGBoost v2 as
# challenger, so a worker loads two flavours; one token for everything.
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

READY_LINE = re.compile(
    r"worker (\d+) serving after ([\d.]+) s: (\d+) models? loaded \((\d+) from the local cache\); "
    r"([\d.]+) s since fork"
)


@dataclass
class Site:
    """Environment of one control-plane installation, and ``manage`` to run commands in it."""

    env: dict[str, str]
    root: Path

    def manage(self, *args: str, env: dict[str, str] | None = None) -> str:
        done = subprocess.run(
            [sys.executable, "manage.py", *args],
            env={**self.env, **(env or {})},
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        return done.stdout


def make_site(root: Path, mlflow_url: str, database_url: str | None = None, **extra: str) -> Site:
    """A migrated site with endpoint ``live``; ``token`` in ``site.env["TEST_TOKEN"]``."""
    (root / "prom").mkdir(parents=True, exist_ok=True)
    env = dict(
        os.environ,
        DJANGO_SETTINGS_MODULE="controlplane.settings",
        DJANGO_SECRET_KEY="gunicorn-test-secret",
        CONTROLPLANE_VAR_DIR=str(root / "var"),
        DATABASE_URL=database_url or f"sqlite:///{root / 'site.sqlite3'}",
        MLFLOW_TRACKING_URI=mlflow_url,
        PROMETHEUS_MULTIPROC_DIR=str(root / "prom"),
        ROUTING_REFRESH_SECONDS="0.5",
        **extra,
    )
    env.pop("MLFLOW_REGISTRY_URI", None)
    site = Site(env, root)
    site.manage("migrate", "-v0")
    site.env["TEST_TOKEN"] = site.manage("shell", "-c", SETUP).strip().splitlines()[-1]
    return site


class Gunicorn:
    """One gunicorn master (own process group) with ``workers`` sync workers."""

    def __init__(self, site: Site, workers: int = 2, app: str = "controlplane.wsgi:application") -> None:
        self.site, self.workers, self.app = site, workers, app
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = site.root / "gunicorn.log"
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 120) -> Gunicorn:
        cmd = [
            sys.executable, "-m", "gunicorn", "-c", str(REPO / "controlplane/gunicorn.conf.py"),
            "--bind", f"127.0.0.1:{self.port}", "--workers", str(self.workers), self.app,
        ]  # fmt: skip
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                cmd, env=self.site.env, cwd=REPO, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        wait_http(f"{self.url}/healthz", timeout, self.proc)
        return self

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)

    def worker_pids(self) -> set[int]:
        assert self.proc is not None
        try:
            text = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text()
        except FileNotFoundError:
            return set()
        return {int(p) for p in text.split()}

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def ready_lines(self) -> list[tuple[int, float, int, int]]:
        """(pid, seconds from fork to ready, models loaded, of which from the cache) per started worker."""
        return [(int(m[1]), float(m[5]), int(m[3]), int(m[4])) for m in READY_LINE.finditer(self.log_text())]

    def metrics(self) -> str:
        return requests.get(f"{self.url}/metrics", timeout=10).text


def wait_until(check: Callable[[], object], timeout: float, what: str, interval: float = 0.2) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError(f"{what}: not within {timeout} s")


def predict(url: str, token: str, key: str | None, timeout: float = 10) -> requests.Response:
    """One keyed /predict on a new connection (so calls spread over the workers)."""
    columns, rows = breast_rows(1)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json", "Connection": "close"}
    if key:
        headers["X-Unit-Key"] = key
    return requests.post(
        f"{url}/predict/live",
        data=json.dumps({"dataframe_split": {"columns": columns, "data": rows}}),
        headers=headers,
        timeout=timeout,
    )
