"""gunicorn settings for the control plane: ``gunicorn -c controlplane/gunicorn.conf.py controlplane.wsgi``.

- Workers from ``GUNICORN_WORKERS`` (default: number of CPUs), each of class
  ``controlplane.gunicorn_worker.KeepAliveWorker`` (``GUNICORN_WORKER_CLASS``): one request at a
  time like ``sync``, but connections stay open between requests (``GUNICORN_KEEPALIVE`` seconds),
  so a client does not pay a TCP handshake per request. No preload of the app: each worker
  imports Django and starts its threads itself, so no thread is shared by fork.
- Prometheus multiprocess mode: ``PROMETHEUS_MULTIPROC_DIR`` is emptied when the master starts
  (stale files from a previous run would be summed in) and a dead worker's live gauges are
  dropped in ``child_exit``.
- The master loads the model versions the active endpoints serve from the local model cache
  before it forks (``when_ready``, again on SIGHUP; ``SERVING_PRELOAD_MODELS``), then freezes the
  collector: the workers share those models' memory copy-on-write instead of each holding a copy.
- The master imports the heavy third-party modules of serving before it forks (``on_starting``;
  ``routing.serving.imports``), so a worker boots in a second or two, which is how long no
  worker accepts during a reload (SIGHUP).
- Each worker starts serving in ``post_worker_init`` (``routing.serving.worker.worker_start``):
  after it loaded the app and before its accept loop, it imports what loading and serving need
  (before any thread of ours runs), builds its routing table and loads its models (from the local
  model cache when it can), within ``SERVING_START_TIMEOUT_SECONDS``. A worker whose model store
  is broken beyond repair sends itself SIGTERM (a graceful exit) and the master starts a fresh one.
"""

from __future__ import annotations

import gc
import os
import shutil
import signal
import time
from pathlib import Path
from typing import Any

bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("GUNICORN_WORKERS", str(os.cpu_count() or 2)))
worker_class = os.environ.get("GUNICORN_WORKER_CLASS", "controlplane.gunicorn_worker.KeepAliveWorker")
preload_app = False
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "60"))
keepalive = int(os.environ.get("GUNICORN_KEEPALIVE", "5"))
accesslog = os.environ.get("GUNICORN_ACCESSLOG") or None  # off by default: a line per request costs
errorlog = "-"
# LOG_FORMAT=json (the chart): gunicorn's own lines (boot, worker exits, timeouts) as JSON objects
# too, so a log pipeline parses every line of the pod; the application's lines: controlplane/logs.py.
if os.environ.get("LOG_FORMAT", "text").strip().lower() == "json":
    logconfig_dict = {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": "controlplane.logs.json_formatter"}},
        "handlers": {
            "error_console": {
                "class": "logging.StreamHandler",
                "formatter": "json",
                "stream": "ext://sys.stderr",
            },
            "console": {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stdout"},
        },
        "loggers": {
            "gunicorn.error": {"level": "INFO", "handlers": ["error_console"], "propagate": False},
            "gunicorn.access": {"level": "INFO", "handlers": ["console"], "propagate": False},
        },
    }

# controlplane/wsgi.py starts serving itself under any other server; here post_worker_init does.
os.environ["CONTROLPLANE_SERVING_STARTED_BY"] = "gunicorn"


def on_starting(server: Any) -> None:
    # The heavy third-party modules serving needs, imported once here so that every worker is
    # born with them: a worker then boots in a second or two instead of many (see
    # routing.serving.imports for why this is safe, and the one thing it costs).
    try:
        from routing.serving.imports import imports_warm

        imports_warm()
    except Exception as exc:  # each worker imports them again, and leaves if it cannot
        server.log.warning("serving modules not imported in the master: %s", exc)
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if directory:
        path = Path(directory)
        if path.is_dir():
            shutil.rmtree(path)
        path.mkdir(parents=True, exist_ok=True)


def when_ready(server: Any) -> None:
    # Models loaded here, before the first fork, live once in memory: every worker shares their
    # pages copy-on-write (routing.serving.worker.models_preload; SERVING_PRELOAD_MODELS).
    _preload_models(server)


def on_reload(server: Any) -> None:
    _preload_models(server)  # SIGHUP: the new workers start with what the endpoints serve now


def _preload_models(server: Any) -> None:
    try:
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "controlplane.settings")
        import django

        django.setup()
        from routing.serving.worker import models_preload

        loaded = models_preload()
        server.log.info("master preloaded %d model versions for its workers to share", loaded)
    except Exception as exc:  # each worker loads its own models, as without the preload
        server.log.warning("models not preloaded in the master: %s", exc)
    # Frozen, the objects the master holds (modules, models) are never touched by a worker's
    # collector, which would otherwise write to every page of them and unshare it.
    gc.collect()
    gc.freeze()


def _leave() -> None:
    os.kill(os.getpid(), signal.SIGTERM)  # gunicorn's own graceful exit; the master replaces us


def post_fork(server: Any, worker: Any) -> None:
    worker.forked_at = time.monotonic()  # the worker logs how long it took to be ready


def post_worker_init(worker: Any) -> None:
    from routing.serving.worker import worker_start

    worker_start(exit_worker=_leave, born_at=getattr(worker, "forked_at", None))
    # Django, MLflow, scikit-learn and the loaded models are hundreds of thousands of objects that
    # live as long as the worker; frozen, the collector's full passes skip them (~100 ms each
    # otherwise, seen as a p99 spike under load).
    gc.collect()
    gc.freeze()


def worker_exit(server: Any, worker: Any) -> None:
    # Rows still queued in this worker would be lost silently on a graceful restart.
    try:
        from routing.serving.prediction_log import BUFFER

        BUFFER.flush()
    except Exception as exc:
        worker.log.warning("prediction log not flushed at exit: %s", exc)


def child_exit(server: Any, worker: Any) -> None:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
