"""The Celery app: background work for the control plane (``celery -A controlplane worker|beat``).

Settings come from Django's settings, ``CELERY_`` block (``controlplane/settings.py``): the broker
from ``CELERY_BROKER_URL`` (Redis in production and CI, an embedded filesystem broker under
``var/`` for ``make run``), late acknowledgement, one message prefetched per process, no result
backend, the beat schedule. Tasks live in each app's ``tasks.py`` and are found by autodiscovery.

This module also records every task run into ``monitoring.metrics`` (runs by outcome, duration)
and, for workers in their own pods, serves those metrics on ``CELERY_WORKER_METRICS_PORT``.
See docs/background-work.md.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from pathlib import Path
from typing import Any

from celery import Celery, Task, signals

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "controlplane.settings")

log = logging.getLogger(__name__)


class ControlPlaneTask(Task):
    """Defaults for every task: retries with exponential backoff and full jitter.

    A task names what to retry (``autoretry_for``); transient means MLflow or the database is
    away for a while, never a bug. 2, 4, 8 ... seconds, capped at five minutes, eight tries
    (about 20 minutes), then the periodic reconcile is the safety net.
    """

    retry_backoff = 2
    retry_backoff_max = 300
    retry_jitter = True
    max_retries = 8


app = Celery("controlplane", task_cls=ControlPlaneTask)
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

_started: dict[str, float] = {}


@signals.task_prerun.connect
def _task_started(task_id: str | None = None, **_: Any) -> None:
    if task_id:
        _started[task_id] = time.monotonic()


@signals.task_postrun.connect
def _task_finished(
    task_id: str | None = None,
    task: Task | None = None,
    retval: Any = None,
    state: str | None = None,
    **_: Any,
) -> None:
    from monitoring.metrics import TASK_OUTCOMES, record_task

    started = _started.pop(task_id or "", None)
    seconds = None if started is None else time.monotonic() - started
    if state == "SUCCESS":
        # A task that left the work to another run returns "skipped" or "deferred".
        outcome = retval if isinstance(retval, str) and retval in TASK_OUTCOMES else "success"
    elif state == "RETRY":
        outcome = "retry"
    else:
        outcome = "failure"
    record_task(getattr(task, "name", "unknown"), outcome, seconds)


@signals.worker_init.connect
def _worker_metrics_dir(**_: Any) -> None:
    # A worker that serves its own metrics owns its multiprocess directory: files left by a
    # previous container in the same pod would be summed in.
    from django.conf import settings

    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if settings.CELERY_WORKER_METRICS_PORT and directory and Path(directory).is_dir():
        for child in Path(directory).iterdir():
            child.unlink() if child.is_file() else shutil.rmtree(child)


@signals.worker_ready.connect
def _serve_worker_metrics(**_: Any) -> None:
    from django.conf import settings

    port = settings.CELERY_WORKER_METRICS_PORT
    if not port:
        return
    from prometheus_client import REGISTRY, CollectorRegistry, multiprocess, start_http_server

    registry = REGISTRY
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        # The pool's processes record into files; this merges them (the main process runs no task).
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    start_http_server(port, registry=registry)
    log.info("worker metrics on :%d/metrics", port)


@signals.worker_process_shutdown.connect
def _pool_process_exited(pid: int | None = None, **_: Any) -> None:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid or os.getpid())
