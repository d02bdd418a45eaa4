"""``make run`` (scripts/run.py) uses its own MLflow and stops everything it started (issue 10, item 10).

Before the fix it "reused" whatever answered on :5000 (someone's ``mlflow ui``, another
checkout) and registered the demo models and a webhook there; and after a freeze of its MLflow
(SIGSTOP), stopping it left that MLflow server running.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType

import pytest

from tests.mlflow_server import REPO, free_port

RUN = REPO / "scripts" / "run.py"


def _clean_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """The environment of a fresh shell in the checkout: none of the test session's settings."""
    prefixes = ("DJANGO_", "DATABASE_", "MLFLOW_", "CONTROLPLANE_", "PROMETHEUS_", "GUNICORN_", "CACHE_URL")
    env = {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}
    env.update(
        CONTROLPLANE_VAR_DIR=str(tmp_path / "var"),
        CONTROLPLANE_ENV_FILE=str(tmp_path / ".env"),
        CONTROLPLANE_PORT=str(free_port()),
        **extra,
    )
    return env


def _load_run(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> ModuleType:
    """scripts/run.py as a module, its constants read from ``env``."""
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    if "MLFLOW_PORT" not in env:
        monkeypatch.delenv("MLFLOW_PORT", raising=False)
    spec = importlib.util.spec_from_file_location("make_run_under_test", RUN)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@contextlib.contextmanager
def _foreign_server(tags: list[dict[str, str]] | None = None) -> Iterator[int]:
    """A server on a free port; with ``tags`` it answers MLflow's experiments/get like a real one."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = json.dumps({"experiment": {"experiment_id": "0", "tags": tags or []}}).encode()
            self.send_response(200 if tags is not None else 404)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield httpd.server_address[1]
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_a_foreign_server_on_an_explicit_mlflow_port_is_refused_with_a_clear_message(tmp_path):
    with _foreign_server() as port:
        env = _clean_env(tmp_path, MLFLOW_PORT=str(port))
        result = subprocess.run(
            [sys.executable, str(RUN)], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
        )

    assert result.returncode != 0
    message = result.stdout + result.stderr
    assert f"port {port} is held by a server that is not this checkout's MLflow" in message
    assert "MLFLOW_PORT" in message
    assert not (tmp_path / "var" / "mlflow-server.log").exists()  # nothing was started


def test_on_the_default_port_a_foreign_server_makes_it_pick_another_free_port(tmp_path, monkeypatch):
    with _foreign_server() as port:
        run = _load_run(monkeypatch, _clean_env(tmp_path))
        monkeypatch.setattr(run, "MLFLOW_PORT", port)  # stands for 5000, held by someone's `mlflow ui`

        chosen, ours_running = run.mlflow_port_choose("our-instance")

    assert chosen != port and not ours_running


def test_its_own_server_is_recognised_by_the_instance_id_it_serves(tmp_path, monkeypatch):
    run = _load_run(monkeypatch, _clean_env(tmp_path))
    with _foreign_server([{"key": run.INSTANCE_TAG, "value": "other-checkout"}]) as port:
        assert not run.serves_instance(port, "our-instance")
    with _foreign_server([{"key": run.INSTANCE_TAG, "value": "our-instance"}]) as port:
        monkeypatch.setattr(run, "MLFLOW_PORT", port)
        assert run.mlflow_port_choose("our-instance") == (port, True)


def _descendants(root: int) -> set[int]:
    table = subprocess.run(["ps", "-eo", "pid=,ppid="], capture_output=True, text=True, check=True).stdout
    children: dict[int, list[int]] = {}
    for line in table.splitlines():
        pid, ppid = map(int, line.split())
        children.setdefault(ppid, []).append(pid)
    found, todo = set(), [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def _alive(pid: int) -> bool:
    state = subprocess.run(["ps", "-o", "stat=", "-p", str(pid)], capture_output=True, text=True).stdout
    return bool(state.strip()) and not state.strip().startswith("Z")


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def _wait_for_output(log: Path, text: str, proc: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in log.read_text(errors="replace"):
            return
        if proc.poll() is not None:
            break
        time.sleep(1)
    raise AssertionError(f"make run did not print {text!r}:\n{log.read_text(errors='replace')[-4000:]}")


@pytest.mark.slow
@pytest.mark.single_pass  # its own SQLite and MLflow whatever DATABASE_URL says: once is enough
@pytest.mark.timeout(600)
def test_stopping_make_run_stops_every_process_it_started_even_a_frozen_mlflow(tmp_path):
    mlflow_port = free_port()
    env = _clean_env(tmp_path, MLFLOW_PORT=str(mlflow_port), GUNICORN_WORKERS="1")
    app_port = int(env["CONTROLPLANE_PORT"])
    log = tmp_path / "make-run.log"
    children: set[int] = set()
    with open(log, "wb") as out:
        # Started with SIGINT ignored, as a shell's background job (CI's SQLite pass) hands it on:
        # Ctrl-C must still stop everything.
        proc = subprocess.Popen(
            [sys.executable, str(RUN)], cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
        )  # fmt: skip
    try:
        _wait_for_output(log, "Ctrl-C stops everything", proc, timeout=420)
        marker = json.loads((tmp_path / "var" / "mlflow" / "instance.json").read_text())
        assert marker["port"] == mlflow_port and marker["owner_pid"] == proc.pid
        children |= _descendants(proc.pid)
        assert marker["pid"] in children and len(children) >= 3  # MLflow, gunicorn and its worker
        assert _listening(mlflow_port) and _listening(app_port)
        manage_py_works_with_only_the_env_file(tmp_path, mlflow_port)

        # Freeze the process that serves MLflow's port (uvicorn, under `mlflow server`), as
        # `kill -STOP $(lsof -ti :5000)` would: its parent exits on SIGTERM at once, it does not.
        frozen = sorted(_descendants(marker["pid"])) or [marker["pid"]]
        for pid in frozen:
            os.kill(pid, signal.SIGSTOP)
        os.kill(proc.pid, signal.SIGINT)  # Ctrl-C...
        time.sleep(2)
        os.kill(proc.pid, signal.SIGTERM)  # ...and, as it takes a while, a `kill` on top
        proc.wait(timeout=120)

        deadline = time.monotonic() + 10  # a SIGKILLed process takes a moment to be reaped
        while any(_alive(pid) for pid in children) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert [pid for pid in children if _alive(pid)] == []
        assert not _listening(mlflow_port) and not _listening(app_port)
        assert "Ctrl-C: stopping everything" in log.read_text()
    finally:  # whatever the outcome, leave nothing behind on a shared machine
        for pid in {proc.pid, *children, *_descendants(proc.pid)}:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
                os.kill(pid, signal.SIGKILL)


def manage_py_works_with_only_the_env_file(tmp_path: Path, mlflow_port: int) -> None:
    """Item 11: after make run, `python manage.py <command>` needs no extra environment."""
    env_file = tmp_path / ".env"
    assert oct(env_file.stat().st_mode & 0o777) == "0o600"
    assert f"MLFLOW_TRACKING_URI='http://127.0.0.1:{mlflow_port}'" in env_file.read_text()
    shell = {k: v for k, v in _clean_env(tmp_path).items() if k != "CONTROLPLANE_VAR_DIR"}
    result = subprocess.run(
        [sys.executable, "manage.py", "create_service_token", "after-make-run", "--all-endpoints"],
        cwd=REPO, env=shell, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().startswith("cpt_")
