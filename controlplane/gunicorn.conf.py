"""gunicorn settings for the control plane: ``gunicorn -c controlplane/gunicorn.conf.py controlplane.wsgi``.

- Workers from ``GUNICORN_WORKERS`` (default: number of CPUs), sync workers, no preload: each
  worker imports Django and loads its models itself, so no thread or model is shared by fork.
- Prometheus multiprocess mode: ``PROMETHEUS_MULTIPROC_DIR`` is emptied when the master starts
  (stale files from a previous run would be summed in) and a dead worker's live gauges are
  dropped in ``child_exit``.
- Each worker builds its routing table and loads its champions right after it starts, so the
  first request does not pay for it.
"""

from __future__ import annotations

import gc
import os
import shutil
from pathlib import Path
from typing import Any

bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("GUNICORN_WORKERS", str(os.cpu_count() or 2)))
worker_class = "sync"
preload_app = False
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "60"))
keepalive = int(os.environ.get("GUNICORN_KEEPALIVE", "5"))
accesslog = os.environ.get("GUNICORN_ACCESSLOG") or None  # off by default: a line per request costs
errorlog = "-"


def on_starting(server: Any) -> None:
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if directory:
        path = Path(directory)
        if path.is_dir():
            shutil.rmtree(path)
        path.mkdir(parents=True, exist_ok=True)


def post_worker_init(worker: Any) -> None:
    try:
        from routing.table import TABLE

        TABLE.current()
    except Exception as exc:  # the worker still serves; /readyz reports what is missing
        worker.log.warning("routing table not built at start: %s", exc)
    # Django, MLflow, scikit-learn and the loaded models are hundreds of thousands of objects that
    # live as long as the worker; frozen, the collector's full passes skip them (~100 ms each
    # otherwise, seen as a p99 spike under load).
    gc.collect()
    gc.freeze()


def worker_exit(server: Any, worker: Any) -> None:
    # Rows still queued in this worker would be lost silently on a graceful restart.
    try:
        from routing.prediction_log import BUFFER

        BUFFER.flush()
    except Exception as exc:
        worker.log.warning("prediction log not flushed at exit: %s", exc)


def child_exit(server: Any, worker: Any) -> None:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
