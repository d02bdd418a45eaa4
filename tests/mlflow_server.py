"""A real MLflow tracking server for tests, started from ``mlflow/server.sh`` on a free port."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def scoring_server_args(model_uri: str, port: int, workers: int = 1) -> list[str]:
    """``mlflow models serve`` from this environment, as the tests and the benchmark start it."""
    mlflow_bin = str(Path(sys.executable).with_name("mlflow"))
    where = ["--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)]
    return [mlflow_bin, "models", "serve", "-m", model_uri, "--env-manager", "local", *where]


def wait_http(url: str, timeout: float, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process for {url} exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise TimeoutError(f"{url} did not answer within {timeout}s")


class MlflowServer:
    """One tracking server process with its own SQLite store and artifact folder."""

    def __init__(self, state_dir: Path, template_db: Path | None = None) -> None:
        self.state_dir = state_dir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None
        self.log = state_dir / "server.log"
        state_dir.mkdir(parents=True, exist_ok=True)
        if template_db is not None and not (state_dir / "mlflow.db").exists():
            # Copying an already-migrated empty store skips ~10 s of migrations.
            shutil.copy(template_db, state_dir / "mlflow.db")

    def start(self, timeout: float = 120) -> MlflowServer:
        env = dict(os.environ)
        env.update(
            PYTHON=sys.executable,
            MLFLOW_STATE_DIR=str(self.state_dir),
            MLFLOW_PORT=str(self.port),
            MLFLOW_WEBHOOK_CACHE_TTL="1",
            MLFLOW_WEBHOOK_REQUEST_MAX_RETRIES="1",
        )
        # mlflow.set_tracking_uri/set_registry_uri export these; a server inheriting them
        # would serve its registry from another server's store.
        env.pop("MLFLOW_TRACKING_URI", None)
        env.pop("MLFLOW_REGISTRY_URI", None)
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                ["bash", str(REPO / "mlflow" / "server.sh")],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # so stop() can end the server's worker processes too
            )
        try:
            wait_http(f"{self.url}/health", timeout, self.proc)
        except Exception:
            self.stop()
            raise RuntimeError(f"MLflow server failed to start:\n{self.log.read_text()[-3000:]}") from None
        return self

    def client(self) -> object:
        """An MlflowClient bound to this server for tracking *and* registry calls.

        ``MlflowClient(url)`` alone sends registry calls to the global registry URI, which
        may be another server's.
        """
        from mlflow.tracking import MlflowClient

        return MlflowClient(tracking_uri=self.url, registry_uri=self.url)

    def freeze(self) -> None:
        """SIGSTOP the server and its workers: the kernel still accepts connections, nobody answers.

        That is a hung server as clients see it (no refusal, no reset, only silence); ``thaw``
        (SIGCONT) lets it carry on where it stopped.
        """
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGSTOP)

    def thaw(self) -> None:
        """SIGCONT after ``freeze``."""
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGCONT)

    @contextlib.contextmanager
    def frozen(self) -> Iterator[MlflowServer]:
        """Frozen inside the block, thawed however it ends (a session server must come back)."""
        self.freeze()
        try:
            yield self
        finally:
            self.thaw()

    def stop(self) -> None:
        """Stop the server and every process it started, and wait until the port is closed.

        uvicorn's worker outlives the ``mlflow server`` parent while it drains keep-alive
        connections, so the whole process group is killed and the port is checked.
        """
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGCONT)  # a frozen server would not see SIGTERM
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                continue
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) != 0:
                    return
            time.sleep(0.1)
        raise RuntimeError(f"MLflow server on port {self.port} still accepts connections")
