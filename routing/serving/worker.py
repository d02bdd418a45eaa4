"""What one serving worker does besides answering: start before it accepts requests, keep its
routing table current, report its status, and leave when its model store is broken.

Where it starts:

- gunicorn: ``post_worker_init`` (``controlplane/gunicorn.conf.py``) calls ``worker_start`` in
  the worker, after it loaded the WSGI app and before it enters its accept loop. The worker's first
  request finds its table built and its models loaded.
- any other server that loads ``controlplane.wsgi`` (``manage.py runserver``): when the app is
  loaded, before the server listens.
- a process that never started (a WSGI host without either): the first request starts it in the
  background and answers 503 ``starting``; a request never loads.

In ``worker_start``, in this order, because each step needs the one before:

1. ``imports_warm``: everything loading and serving a model imports
   (``routing.serving.imports``), on this thread, before any other thread of ours exists (under
   gunicorn the master imported them already: a no-op). Two threads importing mlflow for the first
   time at once (the refresher loading a model, a request syncing the registry for a webhook) can
   leave it half-initialised for good (issue 10, item 1). If this fails, the worker leaves.
2. the routing table: read from the database, models loaded from the local model cache or MLflow,
   for at most ``SERVING_START_TIMEOUT_SECONDS`` (keep it under ``GUNICORN_TIMEOUT``). A cold
   cache and a hung MLflow do not keep the worker from starting: it accepts requests with what is
   loaded, the rest joins the table when its load finishes.
3. the worker's status row, then the refresher thread (``routing-table``), which also heartbeats
   the status row and prunes the model cache now and then.

A worker whose model store is broken beyond repair (an ImportError of a module in
``SERVING_IMPORTS``, or a partially initialised module) counts ``controlplane_worker_exits_total``
and calls ``exit_worker``: under gunicorn a SIGTERM to itself, a graceful exit, and the master
starts a fresh worker.
"""

from __future__ import annotations

import contextlib
import copy
import ctypes
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from django.conf import settings
from django.db import close_old_connections, connection, connections

from monitoring import metrics
from routing.serving import imports, worker_status
from routing.serving.loader import STORE, cached_only
from routing.serving.model_cache import ModelCache
from routing.serving.table import TABLE, wanted_now

logger = logging.getLogger(__name__)

PRUNE_CACHE_EVERY_SECONDS = 3600.0
_started = {"pid": 0, "background": 0}
_lock = threading.Lock()


def imports_warm() -> None:
    """Import everything loading and serving needs, once, on the calling thread."""
    imports.imports_warm()
    from registry.mlflow_client import client

    client()  # the MLflow HTTP timeouts are set here, before any call to MLflow


def models_preload() -> int:
    """In gunicorn's master, before it forks: load what the active endpoints serve; how many.

    Only versions the local model cache holds (no MLflow call, so no connection a worker could
    inherit), into this process's ``STORE``: a worker forked afterwards starts holding them and
    its table uses them as they are, so the weights, trees and arrays of every version live once
    in memory and the workers share the pages copy-on-write (``gc.freeze`` in the master keeps
    the collector from writing to them). What is not cached yet, each worker loads as before.
    The database connection is closed before returning: a forked worker must not share it.
    """
    if not (settings.SERVING_PRELOAD_MODELS and settings.MODEL_CACHE_DIR):
        return 0
    imports_warm()
    with _master_database_timeouts():
        wanted = cached_only(wanted_now())
    with _openmp_on_this_thread_only():
        STORE.sync(wanted)  # also drops what a previous preload held and is no longer wanted
    return len(STORE.status()[0])


@contextlib.contextmanager
def _openmp_on_this_thread_only() -> Iterator[None]:
    """No OpenMP thread pool in the master: a worker forked from it would wait on its threads forever.

    Loading an XGBoost model runs OpenMP parallel loops; GNU libgomp keeps the pool's threads, a
    fork copies only the calling thread, and the child's next parallel loop (XGBoost on more than
    1,000 rows) hangs. With at most one thread per loop no pool is created; the default is put
    back afterwards (it only takes effect in the workers, which start their own pools).
    """
    libraries = []
    for path in sorted({line.split()[-1] for line in Path("/proc/self/maps").read_text().splitlines()}):
        if re.search(r"/lib(g|i)?omp[^/]*\.so", path):
            library = ctypes.CDLL(path)
            libraries.append((library, library.omp_get_max_threads()))
            library.omp_set_num_threads(1)
    try:
        yield
    finally:
        for library, threads in libraries:
            library.omp_set_num_threads(threads)


@contextlib.contextmanager
def _master_database_timeouts(seconds: int = 5) -> Iterator[None]:
    """PostgreSQL: gunicorn's master gives up on a database that does not answer within ``seconds``.

    While it waits it manages no worker. The timeouts apply to this one connection, closed on
    the way out, and the settings are restored before any worker is forked from them.
    """
    conn = connections["default"]
    saved = copy.deepcopy(conn.settings_dict["OPTIONS"])
    if conn.vendor == "postgresql":
        options = conn.settings_dict["OPTIONS"]
        options.setdefault("connect_timeout", seconds)
        options["options"] = f"{options.get('options', '')} -c statement_timeout={seconds * 1000}".strip()
    try:
        yield
    finally:
        connections.close_all()
        conn.settings_dict["OPTIONS"] = saved


def _leave(reason: str, exit_worker: Callable[[], None] | None) -> None:
    metrics.record_worker_exit("model_store_broken")
    logger.error("worker %d leaves so that a fresh one replaces it: %s", os.getpid(), reason)
    if exit_worker is not None:
        exit_worker()


def _build_before_accepting() -> None:
    """The first table, within ``SERVING_START_TIMEOUT_SECONDS`` (a hung database must not block either)."""
    until = time.monotonic() + settings.SERVING_START_TIMEOUT_SECONDS
    done = threading.Event()

    def build() -> None:
        try:
            TABLE.refresh(force=True, load_until=until)
        except Exception as exc:  # serve nothing yet; the refresher keeps trying
            logger.warning("routing table not built at start: %s", exc)
        finally:
            connection.close()  # this thread's own connection
            done.set()

    threading.Thread(target=build, name="routing-table-start", daemon=True).start()
    if not done.wait(max(0.0, until - time.monotonic()) + 1.0):
        logger.warning(
            "routing table still building after %s s; accepting requests",
            settings.SERVING_START_TIMEOUT_SECONDS,
        )


def worker_start(exit_worker: Callable[[], None] | None = None, born_at: float | None = None) -> None:
    """Make this process ready to serve (once per process); see the module docstring.

    ``born_at`` (monotonic): when the process was forked, for the log line saying how long it
    took to be ready.
    """
    with _lock:
        if _started["pid"] == os.getpid():
            return
        _started["pid"] = os.getpid()
    began = time.monotonic()
    STORE.on_broken = lambda reason: _leave(reason, exit_worker)
    try:
        imports_warm()
    except Exception as exc:
        _leave(f"cannot import what serving needs: {type(exc).__name__}: {exc}", exit_worker)
        return
    _build_before_accepting()
    try:
        worker_status.report(force=True)
    except Exception as exc:
        logger.warning("worker status not written at start: %s", exc)
    finally:
        connection.close()
    threading.Thread(target=_refresh_forever, name="routing-table", daemon=True).start()
    loaded = [m for m in (STORE.get(e["model"], e["version"]) for e in STORE.status()[0]) if m]
    logger.info(
        "worker %d serving after %.2f s: %d models loaded (%d from the local cache); %.2f s since fork",
        os.getpid(),
        time.monotonic() - began,
        len(loaded),
        sum(m.origin == "cache" for m in loaded),
        time.monotonic() - (born_at or began),
    )


def worker_start_in_background() -> None:
    """For a process nothing started: start once, off the request that noticed."""
    with _lock:
        if os.getpid() in (_started["pid"], _started["background"]):
            return
        _started["background"] = os.getpid()
    threading.Thread(target=worker_start, name="serving-start", daemon=True).start()


def _refresh_forever() -> None:
    failing, pruned = "", time.monotonic()
    while True:
        time.sleep(settings.ROUTING_REFRESH_SECONDS)
        try:
            close_old_connections()
            TABLE.refresh()
            failing = ""
        except Exception as exc:  # keep serving the last good table; say so once per cause
            if str(exc) != failing:
                logger.warning("routing table refresh failed; serving the previous table: %s", exc)
            failing = str(exc)
        try:
            worker_status.report()
        except Exception as exc:
            logger.debug("worker status not written: %s", exc)
        if settings.MODEL_CACHE_DIR and time.monotonic() - pruned > PRUNE_CACHE_EVERY_SECONDS:
            pruned = time.monotonic()
            ModelCache(settings.MODEL_CACHE_DIR).prune()
