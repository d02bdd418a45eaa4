"""`make run`: bring up MLflow and the control plane on this machine, reusing what exists.

Starts this checkout's own MLflow tracking server (SQLite and artifacts under var/mlflow, port
MLFLOW_PORT, 5000 by default), migrates the control plane's SQLite database, starts gunicorn on
127.0.0.1:8000 (CONTROLPLANE_PORT), registers the MLflow webhook, creates an admin login, runs
the demo set-up, starts a Celery worker and Celery beat (webhook syncs, the periodic registry
reconcile, drift and retention) on the embedded broker under var/celery (no extra server), writes
a git-ignored .env so `python manage.py <command>` works afterwards, and prints where
everything is. Ctrl-C (or SIGTERM) stops every process this script started, whatever state it
is in (a frozen MLflow is continued, then terminated, then killed), and nothing else.

Its own MLflow is recognised by a random instance id kept in var/mlflow/instance.json and set as
a tag of the server's Default experiment: a server on the port that does not serve it (a data
scientist's `mlflow ui`, another checkout) is never written to. With the default port, another
free port is used instead; with MLFLOW_PORT set, make run refuses and says why.

CONTROLPLANE_VAR_DIR, MLFLOW_PORT, CONTROLPLANE_PORT and CONTROLPLANE_ENV_FILE move what it
uses (the tests run it on free ports in a temporary directory); the defaults are the contract's.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
VAR = Path(os.environ.get("CONTROLPLANE_VAR_DIR") or REPO / "var").resolve()
ENV_FILE = Path(os.environ.get("CONTROLPLANE_ENV_FILE") or REPO / ".env")
PY = sys.executable
MLFLOW_PORT_SET = bool(os.environ.get("MLFLOW_PORT"))  # set by the user: never silently moved
MLFLOW_PORT = int(os.environ.get("MLFLOW_PORT") or 5000)
APP_PORT = int(os.environ.get("CONTROLPLANE_PORT") or 8000)
MLFLOW_URL = f"http://127.0.0.1:{MLFLOW_PORT}"  # may move to another free port: see start_mlflow
APP_URL = f"http://127.0.0.1:{APP_PORT}"
MLFLOW_MARKER = VAR / "mlflow" / "instance.json"
INSTANCE_TAG = "controlplane.instance_id"
# Celery worker processes: a webhook sync need not wait behind a full reconcile.
CELERY_CONCURRENCY = "2"
STOP_GRACE_SECONDS = 15

started: list[subprocess.Popen] = []
adopted_groups: list[int] = []  # this checkout's MLflow left running by a run that was killed
running_commands: set[subprocess.Popen] = set()  # manage.py commands in flight
stopping = threading.Event()
# Stopped by signalling their main process only: a Celery worker's warm shutdown lets its pool
# finish the running tasks (a SIGTERM to the whole group would kill them mid-task).
main_process_only: set[int] = set()


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


def port_taken(port: int) -> bool:
    """Something listens on 127.0.0.1:port (or holds it on every interface)."""
    with socket.socket() as s:
        s.settimeout(1)
        if s.connect_ex(("127.0.0.1", port)) == 0:
            return True
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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
    """Run ``manage.py args``; tracked, so stopping make run stops a command in flight too."""
    # Commands are not web workers: their counters must not land in the workers' metric files.
    env = {k: v for k, v in env.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    pipe = None if check else subprocess.PIPE
    cmd = [PY, "manage.py", *args]
    if stopping.is_set():  # stop_all has run: start nothing it would not stop
        return subprocess.CompletedProcess(cmd, 1, "", "make run is stopping")
    with subprocess.Popen(cmd, env=env, cwd=REPO, text=True, stdout=pipe, stderr=pipe) as proc:
        running_commands.add(proc)
        try:
            out, err = proc.communicate()
        except BaseException:
            proc.kill()
            raise
        finally:
            running_commands.discard(proc)
    if check and proc.returncode != 0:
        raise subprocess.CalledProcessError(proc.returncode, cmd)
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def environment() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("DJANGO_SECRET_KEY", secret_file("secret_key", lambda: secrets.token_urlsafe(50)))
    env.setdefault("MLFLOW_WEBHOOK_SECRET", secret_file("webhook_secret", lambda: secrets.token_urlsafe(32)))
    env["CONTROLPLANE_VAR_DIR"] = str(VAR)
    env["CONTROLPLANE_ENV_FILE"] = str(ENV_FILE)
    env.setdefault("DATABASE_URL", f"sqlite:///{VAR / 'controlplane.sqlite3'}")
    env.setdefault("DJANGO_ALLOWED_HOSTS", "127.0.0.1,localhost")
    env.setdefault("DJANGO_CSRF_TRUSTED_ORIGINS", f"{APP_URL},http://localhost:{APP_PORT}")
    env.setdefault("GUNICORN_WORKERS", "2")
    env["PROMETHEUS_MULTIPROC_DIR"] = str(VAR / "prometheus")
    env["PYTHON"] = PY
    # The demo experiment should reach a verdict within minutes: looks and quality every 30 s.
    env.setdefault("SCHEDULE_ANALYZE_EXPERIMENTS_SECONDS", "30")
    env.setdefault("SCHEDULE_COMPUTE_QUALITY_SECONDS", "30")
    return env


# --- this checkout's own MLflow (issue 10, item 10) --------------------------------------------


def mlflow_marker() -> dict:
    """var/mlflow/instance.json: the instance id, and the pid, port and owner of the last server."""
    try:
        return json.loads(MLFLOW_MARKER.read_text())
    except (OSError, ValueError):
        return {}


def mlflow_marker_write(**values: object) -> None:
    MLFLOW_MARKER.parent.mkdir(parents=True, exist_ok=True)
    MLFLOW_MARKER.write_text(json.dumps({**mlflow_marker(), **values}, indent=2))


def pid_alive(pid: object) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def is_our_mlflow(pid: object) -> bool:
    """``pid`` is alive and is an MLflow server on this checkout's store (not a reused pid)."""
    if not pid_alive(pid):
        return False
    ps = subprocess.run(["ps", "-o", "command=", "-p", str(pid)], capture_output=True, text=True, check=False)
    return "mlflow" in ps.stdout and str(VAR / "mlflow") in ps.stdout


def serves_instance(port: int, instance_id: str) -> bool:
    """The server on ``port`` is MLflow with this checkout's store (its Default experiment carries the id)."""
    url = f"http://127.0.0.1:{port}/api/2.0/mlflow/experiments/get?experiment_id=0"
    try:
        with urllib.request.urlopen(url, timeout=3) as r:
            tags = json.load(r).get("experiment", {}).get("tags", [])
    except (OSError, ValueError, AttributeError):
        return False
    return any(t.get("key") == INSTANCE_TAG and t.get("value") == instance_id for t in tags)


def mark_instance(port: int, instance_id: str) -> None:
    """Tag our server's Default experiment with the instance id (kept in its own store)."""
    body = json.dumps({"experiment_id": "0", "key": INSTANCE_TAG, "value": instance_id}).encode()
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/api/2.0/mlflow/experiments/set-experiment-tag",
        data=body,
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10):  # noqa: S310 - local URL
        pass


def mlflow_port_choose(instance_id: str) -> tuple[int, bool]:
    """``(port, ours_running)``: our running server's port, or a port we may start one on."""
    marker = mlflow_marker()
    if port_taken(MLFLOW_PORT) and serves_instance(MLFLOW_PORT, instance_id):
        return MLFLOW_PORT, True
    if not MLFLOW_PORT_SET and marker.get("port") and is_our_mlflow(marker.get("pid")):
        if serves_instance(int(marker["port"]), instance_id):  # it moved off a taken 5000 last time
            return int(marker["port"]), True
    if not port_taken(MLFLOW_PORT):
        return MLFLOW_PORT, False
    held = f"port {MLFLOW_PORT} is held by a server that is not this checkout's MLflow"
    if MLFLOW_PORT_SET:
        sys.exit(
            f"[make run] {held} (another `mlflow ui` or checkout?). make run never registers its demo "
            "models or webhook on someone else's MLflow: stop that server, or choose a free "
            "MLFLOW_PORT (or unset it to let make run pick one)."
        )
    port = free_port()
    say(f"{held}; starting this checkout's MLflow on port {port} instead (set MLFLOW_PORT to choose)")
    return port, False


def adopt_or_refuse(port: int) -> None:
    """Our server already runs: another make run owns it (refuse), or a killed one left it (adopt)."""
    marker = mlflow_marker()
    owner = marker.get("owner_pid")
    if owner != os.getpid() and pid_alive(owner):
        sys.exit(f"[make run] another make run of this checkout (pid {owner}) is running; stop it first")
    if is_our_mlflow(marker.get("pid")):
        adopted_groups.append(int(marker["pid"]))  # started in its own session: pgid == pid
        say(f"reusing this checkout's MLflow on port {port} (pid {marker['pid']}); it stops with this run")
    else:
        say(f"reusing this checkout's MLflow on port {port}")
    mlflow_marker_write(owner_pid=os.getpid())


def start_mlflow(env: dict[str, str]) -> None:
    global MLFLOW_URL
    instance_id = mlflow_marker().get("instance_id") or uuid.uuid4().hex
    mlflow_marker_write(instance_id=instance_id)
    port, ours_running = mlflow_port_choose(instance_id)
    MLFLOW_URL = f"http://127.0.0.1:{port}"
    env["MLFLOW_TRACKING_URI"] = MLFLOW_URL  # never anyone else's server, whatever the shell says
    if ours_running:
        adopt_or_refuse(port)
        return
    say(f"starting MLflow tracking server on port {port} (first start migrates its database: ~10 s)")
    mlflow_env = {
        k: v for k, v in env.items() if k not in ("MLFLOW_TRACKING_URI", "PROMETHEUS_MULTIPROC_DIR")
    }
    mlflow_env.update(MLFLOW_STATE_DIR=str(VAR / "mlflow"), MLFLOW_PORT=str(port))
    proc = start(["bash", "mlflow/server.sh"], mlflow_env, VAR / "mlflow-server.log")
    mlflow_marker_write(pid=proc.pid, port=port, owner_pid=os.getpid())
    wait_for(f"{MLFLOW_URL}/health", proc, 180, "MLflow server")
    mark_instance(port, instance_id)


# --- .env for manage.py (issue 10, item 11) ------------------------------------------------------


def write_env_file(env: dict[str, str]) -> None:
    """A git-ignored .env so `python manage.py <command>` in this checkout needs no extra environment."""
    keys = ("DJANGO_SECRET_KEY", "MLFLOW_WEBHOOK_SECRET", "MLFLOW_TRACKING_URI", "DATABASE_URL")
    lines = ["# Written by `make run` for manage.py commands in this checkout; real variables win.\n"]
    for key in (*keys, "CONTROLPLANE_VAR_DIR"):
        value = env[key]
        if "'" in value or "\n" in value:
            sys.exit(f"[make run] cannot write {key} to {ENV_FILE}: it contains a quote or a newline")
        lines.append(f"{key}='{value}'\n")
    ENV_FILE.write_text("".join(lines))
    ENV_FILE.chmod(0o600)


def start_web(env: dict[str, str]) -> None:
    if answers(f"{APP_URL}/healthz"):
        sys.exit(f"[make run] something already answers at {APP_URL}; stop it first")
    multiproc = Path(env["PROMETHEUS_MULTIPROC_DIR"])
    shutil.rmtree(multiproc, ignore_errors=True)  # stale counters from a previous run
    multiproc.mkdir(parents=True)
    cmd = [PY, "-m", "gunicorn", "controlplane.wsgi:application", "--bind", f"127.0.0.1:{APP_PORT}"]
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


def start_background_work(env: dict[str, str]) -> None:
    """A Celery worker and Celery beat (the periodic jobs), once for the whole run.

    The worker records its task metrics into the web workers' multiprocess directory, so they
    show on the web /metrics; it starts after gunicorn, which empties that directory at start.
    """
    celery = [PY, "-m", "celery", "-A", "controlplane"]
    worker = [*celery, "worker", "--loglevel", "INFO", "--concurrency", CELERY_CONCURRENCY]
    worker += ["--hostname", "worker@%h", "--without-gossip", "--without-mingle"]
    say(f"starting a Celery worker ({CELERY_CONCURRENCY} processes) and Celery beat on the embedded broker")
    main_process_only.add(start(worker, env, VAR / "celery-worker.log").pid)
    beat_env = {k: v for k, v in env.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    start([*celery, "beat", "--loglevel", "INFO"], beat_env, VAR / "celery-beat.log")


def start_demo_traffic(env: dict[str, str]) -> None:
    """Demo rows to /predict and the true labels of half of them to /feedback (var/demo-traffic.log)."""
    env = {k: v for k, v in env.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    say("sending demo traffic and ground truth (the demo experiment's verdict shows within minutes)")
    start(
        [PY, "manage.py", "demo_experiment", "--traffic", "--base-url", APP_URL],
        env,
        VAR / "demo-traffic.log",
    )


def _signal_group(pgid: int, sig: int) -> bool:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def stop_all(*_: object) -> None:
    """Stop every process this run started or adopted, whatever state it is in.

    Each server runs in its own session (process group), so its workers go with it. A group may
    be stopped (SIGSTOP: a frozen MLflow), which would hold SIGTERM pending forever: SIGCONT
    first, then SIGTERM, then SIGKILL what is left after the grace period.
    """
    for sig in (signal.SIGINT, signal.SIGTERM):  # a second Ctrl-C must not cut the clean-up short
        signal.signal(sig, signal.SIG_IGN)
    stopping.set()
    for proc in list(running_commands):
        proc.kill()
    groups = [p.pid for p in reversed(started)] + adopted_groups
    for pgid in groups:
        _signal_group(pgid, signal.SIGCONT)
        if pgid in main_process_only:  # a Celery worker: warm shutdown through its main process
            try:
                os.kill(pgid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        else:
            _signal_group(pgid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE_SECONDS
    for proc in started:
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            pass
    while any(_signal_group(g, 0) for g in groups) and time.monotonic() < deadline:
        time.sleep(0.2)  # workers outliving their master (uvicorn draining, gunicorn workers)
    for pgid in groups:
        _signal_group(pgid, signal.SIGKILL)
    for proc in started:
        proc.wait()


class Terminated(BaseException):
    """SIGTERM (a ``kill``, a container runtime): stop everything, as Ctrl-C does.

    A BaseException, like KeyboardInterrupt and SystemExit, so no ``except Exception`` on the way
    swallows it."""


def _terminated(*_: object) -> None:
    raise Terminated


def main() -> None:
    VAR.mkdir(parents=True, exist_ok=True)
    env = environment()
    # A shell that starts a command in the background hands it SIGINT ignored, and Python then
    # installs no KeyboardInterrupt: Ctrl-C (or kill -INT) must stop this run however it started.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _terminated)
    try:
        if port_taken(APP_PORT):  # before anything starts: a second make run must not touch the first
            sys.exit(f"[make run] something already listens on {APP_URL}; stop it first")
        start_mlflow(env)
        write_env_file(env)
        say("migrating the control plane database (SQLite under var/)")
        manage(env, "migrate", "--noinput", "-v", "0")
        manage(env, "collectstatic", "--noinput", "-v", "0")
        start_web(env)
        manage(env, "register_mlflow_webhook", "--url", f"{APP_URL}/hooks/mlflow")
        user, password = admin_login(env)
        demo = manage(env, "demo", "--base-url", APP_URL, check=False) if _has_command("demo") else None
        manage(env, "sync_registry")
        if demo is not None and demo.returncode == 0 and _has_command("demo_experiment"):
            experiment = manage(env, "demo_experiment", "--base-url", APP_URL, check=False)
            demo.stdout += experiment.stdout or ""
        start_background_work(env)
        if demo is not None and demo.returncode == 0 and _has_command("demo_experiment"):
            start_demo_traffic(env)
        print(banner(user, password, demo.stdout if demo else ""), flush=True)
        if demo is not None and demo.returncode != 0:
            say(f"demo set-up failed:\n{demo.stderr}")
        while all(p.poll() is None for p in started):
            time.sleep(1)
        say("a server exited; stopping everything (see var/*.log)")
    except KeyboardInterrupt:
        say("Ctrl-C: stopping everything this run started")
    except Terminated:
        say("SIGTERM: stopping everything this run started")
    finally:
        stop_all()
        if mlflow_marker().get("owner_pid") == os.getpid():
            mlflow_marker_write(owner_pid=None)


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
        "  Background work Celery worker + beat (logs: var/celery-worker.log, var/celery-beat.log)",
    ]
    if demo_output.strip():
        lines += ["", *[f"  {line}" for line in demo_output.strip().splitlines()]]
    lines += ["", "  Ctrl-C stops everything this command started.", "=" * 72]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
