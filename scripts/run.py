"""`make run`: bring up MLflow and the control plane on this machine, reusing what exists.

Starts (unless already running) a local MLflow tracking server on :5000 with SQLite and
artifacts under var/mlflow, migrates the control plane's SQLite database, starts gunicorn on
127.0.0.1:8000, registers the MLflow webhook, creates an admin login, runs the demo set-up,
keeps the registry reconcile and drift computation going in the background, and prints where
everything is. Ctrl-C stops every process this script started, and nothing else.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
VAR = REPO / "var"
PY = sys.executable
MLFLOW_URL = "http://127.0.0.1:5000"
APP_URL = "http://127.0.0.1:8000"
SYNC_EVERY_SECONDS = 60
DRIFT_EVERY_SECONDS = 300

started: list[subprocess.Popen] = []
stopping = threading.Event()


def say(message: str) -> None:
    print(f"[make run] {message}", flush=True)


def secret_file(name: str, make: callable) -> str:
    """A local secret generated once into var/ and reused on every run."""
    path = VAR / name
    if not path.exists():
        path.write_text(make())
        path.chmod(0o600)
    return path.read_text().strip()


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as r:  # noqa: S310 - local URL
            return r.status == 200
    except OSError:
        return False


def wait_for(url: str, proc: subprocess.Popen | None, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if answers(url):
            return
        if proc is not None and proc.poll() is not None:
            sys.exit(f"[make run] {what} exited with code {proc.returncode}; see its log under var/")
        time.sleep(0.3)
    sys.exit(f"[make run] {what} did not answer at {url} within {timeout:.0f}s")


def start(cmd: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    out = open(log, "ab")  # kept open for the child's lifetime
    proc = subprocess.Popen(
        cmd, env=env, cwd=REPO, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
    )
    started.append(proc)
    return proc


def manage(env: dict[str, str], *args: str, check: bool = True) -> subprocess.CompletedProcess:
    # Commands are not web workers: their counters must not land in the workers' metric files.
    env = {k: v for k, v in env.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    return subprocess.run(
        [PY, "manage.py", *args], env=env, cwd=REPO, check=check, text=True, capture_output=not check
    )


def environment() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("DJANGO_SECRET_KEY", secret_file("secret_key", lambda: secrets.token_urlsafe(50)))
    env.setdefault("MLFLOW_WEBHOOK_SECRET", secret_file("webhook_secret", lambda: secrets.token_urlsafe(32)))
    env.setdefault("MLFLOW_TRACKING_URI", MLFLOW_URL)
    env.setdefault("DJANGO_ALLOWED_HOSTS", "127.0.0.1,localhost")
    env.setdefault("DJANGO_CSRF_TRUSTED_ORIGINS", f"{APP_URL},http://localhost:8000")
    env.setdefault("GUNICORN_WORKERS", "2")
    env["PROMETHEUS_MULTIPROC_DIR"] = str(VAR / "prometheus")
    env["PYTHON"] = PY
    return env


def start_mlflow(env: dict[str, str]) -> None:
    if answers(f"{MLFLOW_URL}/health"):
        say(f"MLflow already running at {MLFLOW_URL}; reusing it")
        return
    say("starting MLflow tracking server (first start migrates its database: ~10 s)")
    mlflow_env = {
        k: v for k, v in env.items() if k not in ("MLFLOW_TRACKING_URI", "PROMETHEUS_MULTIPROC_DIR")
    }
    proc = start(["bash", "mlflow/server.sh"], mlflow_env, VAR / "mlflow-server.log")
    wait_for(f"{MLFLOW_URL}/health", proc, 180, "MLflow server")


def start_web(env: dict[str, str]) -> None:
    if answers(f"{APP_URL}/healthz"):
        sys.exit(f"[make run] something already answers at {APP_URL}; stop it first")
    multiproc = Path(env["PROMETHEUS_MULTIPROC_DIR"])
    shutil.rmtree(multiproc, ignore_errors=True)  # stale counters from a previous run
    multiproc.mkdir(parents=True)
    cmd = [PY, "-m", "gunicorn", "controlplane.wsgi:application", "--bind", "127.0.0.1:8000"]
    conf = REPO / "controlplane" / "gunicorn.conf.py"
    cmd += ["-c", str(conf)] if conf.exists() else ["--workers", env["GUNICORN_WORKERS"]]
    say(f"starting gunicorn with {env['GUNICORN_WORKERS']} workers on {APP_URL}")
    proc = start(cmd, env, VAR / "gunicorn.log")
    wait_for(f"{APP_URL}/healthz", proc, 60, "gunicorn")


def admin_login(env: dict[str, str]) -> tuple[str, str]:
    password = secret_file("admin_password", lambda: secrets.token_urlsafe(12))
    env = {**env, "DJANGO_SUPERUSER_PASSWORD": password}
    result = manage(
        env, "createsuperuser", "--noinput", "--username", "admin", "--email", "admin@localhost", check=False
    )
    if result.returncode != 0 and "already taken" not in result.stderr:
        sys.exit(f"[make run] could not create the admin login: {result.stderr}")
    return "admin", password


def background_jobs(env: dict[str, str]) -> None:
    """Registry reconcile and drift, in this one process (never once per web worker)."""
    last_drift = 0.0
    commands = {p.stem for p in (REPO / "monitoring" / "management" / "commands").glob("*.py")}
    while not stopping.wait(SYNC_EVERY_SECONDS):
        manage(env, "sync_registry", check=False)
        if "compute_drift" in commands and time.monotonic() - last_drift > DRIFT_EVERY_SECONDS:
            manage(env, "compute_drift", check=False)
            last_drift = time.monotonic()


def stop_all(*_: object) -> None:
    stopping.set()
    for proc in reversed(started):
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
    for proc in started:
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


def main() -> None:
    VAR.mkdir(exist_ok=True)
    env = environment()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        say("migrating the control plane database (SQLite under var/)")
        manage(env, "migrate", "--noinput", "-v", "0")
        manage(env, "collectstatic", "--noinput", "-v", "0")
        start_mlflow(env)
        start_web(env)
        manage(env, "register_mlflow_webhook", "--url", f"{APP_URL}/hooks/mlflow")
        user, password = admin_login(env)
        demo = manage(env, "demo", check=False) if _has_command("demo") else None
        manage(env, "sync_registry")
        threading.Thread(target=background_jobs, args=(env,), daemon=True).start()
        print(banner(user, password, demo.stdout if demo else ""), flush=True)
        if demo is not None and demo.returncode != 0:
            say(f"demo set-up failed:\n{demo.stderr}")
        while all(p.poll() is None for p in started):
            time.sleep(1)
        say("a server exited; stopping everything (see var/*.log)")
    except KeyboardInterrupt:
        say("Ctrl-C: stopping everything this run started")
    finally:
        stop_all()


def _has_command(name: str) -> bool:
    return any(REPO.glob(f"*/management/commands/{name}.py"))


def banner(user: str, password: str, demo_output: str) -> str:
    lines = [
        "",
        "=" * 72,
        f"  Control plane   {APP_URL}/admin/   (login: {user} / {password})",
        f"  MLflow UI       {MLFLOW_URL}",
        f"  Control API     {APP_URL}/api/v1/   (OpenAPI: {APP_URL}/api/schema/)",
        f"  Metrics         {APP_URL}/metrics",
    ]
    if demo_output.strip():
        lines += ["", *[f"  {line}" for line in demo_output.strip().splitlines()]]
    lines += ["", "  Ctrl-C stops everything this command started.", "=" * 72]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
