"""Real Celery workers for tests: ``celery -A controlplane worker`` subprocesses on a real Redis.

Never ``task_always_eager``: tasks travel through Redis to worker processes that import the
project like production does, and those processes read and write the test database.

- Redis at ``TEST_REDIS_URL`` (default 127.0.0.1:6379/0) is shared with other people's tests:
  every session gets its own key prefix (``CELERY_BROKER_KEY_PREFIX``, set in tests/settings.py
  so this process and every worker agree), and the rig deletes its keys at the end.
- The workers see the test database (tests using them need ``transactional_db`` or
  ``django_db(transaction=True)``, so rows are committed where the workers can read them).
- Workers record task metrics into a multiprocess directory the tests read (``task_runs``).
- ``celery_workers`` (session) is two workers on the default queue; a test that must control
  which worker takes a task starts its own workers on a queue of its own (``start_worker``).

Later tests (batch jobs, rollout controller) reuse the fixtures through ``tests/conftest.py``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.mlflow_server import REPO

REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def redis_client() -> Any:
    import redis

    return redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2, socket_timeout=5)


def require_redis() -> None:
    """Skip (a failure under CI=true) when no Redis answers."""
    try:
        redis_client().ping()
    except Exception as exc:
        pytest.skip(f"no Redis at {REDIS_URL} ({exc}); the Celery tests need a real broker")


def test_database_url() -> str:
    """The URL of the database pytest-django set up, for processes outside this one."""
    from django.db import connection

    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    auth = db["USER"] + (f":{db['PASSWORD']}" if db["PASSWORD"] else "")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


@dataclass
class Worker:
    """One ``celery worker`` process group (the main process and its pool)."""

    name: str
    proc: subprocess.Popen
    log: Path

    def wait_ready(self, timeout: float = 90) -> Worker:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker {self.name} exited:\n{self.log.read_text()[-4000:]}")
            if " ready." in self.log.read_text(errors="replace"):
                return self
            time.sleep(0.2)
        raise TimeoutError(f"worker {self.name} not ready in {timeout}s:\n{self.log.read_text()[-4000:]}")

    def kill(self) -> None:
        """SIGKILL the whole worker, as when its pod or machine dies: nothing is acknowledged."""
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        """Warm shutdown (SIGTERM), then SIGKILL if it hangs."""
        if self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.kill()


@dataclass
class CeleryRig:
    """Environment and processes of the test session's workers."""

    root: Path
    env: dict[str, str]
    workers: list[Worker] = field(default_factory=list)

    @property
    def metrics_dir(self) -> Path:
        return Path(self.env["PROMETHEUS_MULTIPROC_DIR"])

    def start_worker(self, name: str, *, queues: list[str] | None = None, **env: str) -> Worker:
        """Start a worker with one pool process; ``queues`` default to the project's queue."""
        cmd = [
            sys.executable, "-m", "celery", "-A", "controlplane", "worker", "--loglevel", "INFO",
            "--concurrency", "1", "--hostname", f"{name}-{uuid.uuid4().hex[:6]}@%h",
            "--without-gossip", "--without-mingle", "--without-heartbeat",
        ]  # fmt: skip
        if queues:
            cmd += ["--queues", ",".join(queues)]
        log = self.root / f"{name}.log"
        with open(log, "ab") as out:
            proc = subprocess.Popen(
                cmd,
                env={**self.env, **env},
                cwd=REPO,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        worker = Worker(name, proc, log)
        self.workers.append(worker)
        return worker

    def logs(self) -> str:
        return "\n".join(f"--- {w.name}\n{w.log.read_text(errors='replace')[-3000:]}" for w in self.workers)

    def stop(self) -> None:
        for worker in self.workers:
            worker.stop()

    def delete_keys(self) -> None:
        prefix = self.env["CELERY_BROKER_KEY_PREFIX"]
        client = redis_client()
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        if keys:
            client.delete(*keys)


def make_rig(root: Path, mlflow_url: str) -> CeleryRig:
    """The environment every worker of the session runs with."""
    from django.conf import settings

    (root / "prometheus").mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env.pop("MLFLOW_REGISTRY_URI", None)
    env.update(
        DJANGO_SETTINGS_MODULE="controlplane.settings",
        CONTROLPLANE_VAR_DIR=str(root / "var"),
        DATABASE_URL=test_database_url(),
        MLFLOW_TRACKING_URI=mlflow_url,
        CELERY_BROKER_URL=os.environ["CELERY_BROKER_URL"],
        CELERY_BROKER_KEY_PREFIX=os.environ["CELERY_BROKER_KEY_PREFIX"],
        PROMETHEUS_MULTIPROC_DIR=str(root / "prometheus"),
        # Batch-job files: the same folder this process's views write uploads to.
        BATCH_STORAGE_DIR=str(settings.STORAGES["batch"]["OPTIONS"]["location"]),
        # A full reconcile of the session's MLflow fits; tests of killed workers set shorter ones.
        CELERY_TASK_TIME_LIMIT_SECONDS="120",
        CELERY_VISIBILITY_TIMEOUT_SECONDS="150",
    )
    return CeleryRig(root, env)


def task_runs(metrics_dir: Path) -> dict[tuple[str, str], float]:
    """``controlplane_task_runs_total`` by (task, outcome), summed over every worker process."""
    from prometheus_client import CollectorRegistry
    from prometheus_client.multiprocess import MultiProcessCollector

    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(metrics_dir))
    runs: dict[tuple[str, str], float] = {}
    for family in registry.collect():
        for sample in family.samples:
            if sample.name == "controlplane_task_runs_total":
                key = (sample.labels["task"], sample.labels["outcome"])
                runs[key] = runs.get(key, 0) + sample.value
    return runs


def wait_until(predicate: Callable[[], Any], timeout: float = 60, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"{what} not reached within {timeout}s")


@pytest.fixture(scope="session")
def celery_rig(
    django_db_setup: None, mlflow_server: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[CeleryRig]:
    """The session's worker environment (no worker started yet); stops every worker at the end,
    before the test database is dropped."""
    require_redis()
    rig = make_rig(tmp_path_factory.mktemp("celery"), mlflow_server.url)
    yield rig
    rig.stop()
    rig.delete_keys()


@pytest.fixture(scope="session")
def celery_workers(celery_rig: CeleryRig) -> CeleryRig:
    """Two workers on the project's default queue, for the whole session."""
    started = [celery_rig.start_worker(f"session-{i}") for i in (1, 2)]
    for worker in started:
        worker.wait_ready()
    return celery_rig
