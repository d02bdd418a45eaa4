"""gunicorn config for ``bench/stages.py``: ours, with a CPU and wall timer around each stage of a request.

``controlplane/gunicorn.conf.py`` runs unchanged; after a worker starts, the functions named in
``STAGES`` are wrapped so that every call adds its thread CPU time (user + system, so the
socket system calls count) and its wall time to a per-stage total. ``SIGUSR2`` makes the worker
write its totals to ``$BENCH_STAGES_DIR/<pid>-<n>.json``; the difference of two such snapshots
is what the requests in between cost. A stage whose function is not found (the code moved) is
reported as missing rather than failing the run.
"""

from __future__ import annotations

import functools
import importlib
import json
import os
import signal
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

_conf = Path(__file__).resolve().parent.parent / "controlplane" / "gunicorn.conf.py"
exec(compile(_conf.read_text(), str(_conf), "exec"))  # noqa: S102 - our own gunicorn settings, verbatim
_post_worker_init = globals()["post_worker_init"]

# (depth, label, module, attribute path): depth only indents the printed table.
STAGES = [
    (0, "event loop: select, accept, dispatch + below", "gunicorn.workers.gthread", "ThreadWorker.wait_for_and_dispatch_events"),
    (1, "serve one request (KeepAliveWorker)", "controlplane.gunicorn_worker", "KeepAliveWorker.enqueue_req"),
    (2, "read + parse the HTTP request", "gunicorn.http.parser", "Parser.__next__"),
    (2, "handle_request", "controlplane.gunicorn_worker", "KeepAliveWorker.handle_request"),
    (3, "build the WSGI environ", "gunicorn.http.wsgi", "create"),
    (3, "ServingDispatch (resolve, below)", "controlplane.dispatch", "ServingDispatch.__call__"),
    (4, "WSGIRequest()", "django.core.handlers.wsgi", "WSGIRequest.__init__"),
    (4, "RequestIdMiddleware", "controlplane.middleware", "RequestIdMiddleware.__call__"),
    (5, "serving.views.predict", "routing.serving.views", "predict"),
    (6, "TABLE.current", "routing.serving.table", "RoutingTable.current"),
    (6, "auth.authenticate", "routing.serving.auth", "authenticate"),
    (6, "auth.authorize", "routing.serving.auth", "authorize"),
    (6, "auth.throttle", "routing.serving.auth", "throttle"),
    (6, "read_body", "routing.serving.views", "read_body"),
    (6, "parse (JSON -> Payload)", "routing.serving.views", "parse"),
    (6, "dataplane.choose (variant)", "routing.serving.dataplane", "choose"),
    (6, "validate (signature -> NumPy)", "routing.serving.dataplane", "validate"),
    (6, "dataplane.answer", "routing.serving.dataplane", "answer"),
    (7, "inference.predict (the model)", "routing.serving.inference", "predict"),
    (6, "request_json_for_log", "routing.serving.views", "request_json_for_log"),
    (6, "logged_inputs", "routing.serving.views", "logged_inputs"),
    (6, "LogEntry()", "routing.serving.views", "LogEntry"),
    (6, "prediction log enqueue", "routing.serving.prediction_log", "PredictionLogBuffer.record"),
    (6, "metrics.record_prediction", "monitoring.metrics", "record_prediction"),
    (6, "metrics.record_request", "monitoring.metrics", "record_request"),
    (6, "_json (dumps + HttpResponse)", "routing.serving.views", "_json"),
    (3, "send status, headers and body (one send)", "controlplane.gunicorn_worker", "OneSendResponse._emit_body"),
    (3, "gunicorn Response.close", "controlplane.gunicorn_worker", "OneSendResponse.close"),
    (2, "keep-alive: back to the poller", "gunicorn.workers.gthread", "ThreadWorker.finish_request"),
]  # fmt: skip
TOTALS: dict[str, list[float]] = defaultdict(lambda: [0, 0.0, 0.0])  # calls, cpu s, wall s


def _timed(label: str, fn: Any) -> Any:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        cpu, wall = time.thread_time(), time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            total = TOTALS[label]
            total[0] += 1
            total[1] += time.thread_time() - cpu
            total[2] += time.perf_counter() - wall

    return wrapper


def _wrap(label: str, module_name: str, path: str) -> bool:
    """Replace the function where callers look it up; both the module and the view's own imports."""
    owner: Any = importlib.import_module(module_name)
    *parents, name = path.split(".")
    for parent in parents:
        owner = getattr(owner, parent, None)
    raw = owner.__dict__.get(name) if owner is not None and hasattr(owner, "__dict__") else None
    if raw is None:
        return False
    if isinstance(raw, staticmethod):
        setattr(owner, name, staticmethod(_timed(label, raw.__func__)))
    else:
        setattr(owner, name, _timed(label, raw))
    return True


def post_worker_init(worker: Any) -> None:
    missing = [label for _, label, module, path in STAGES if not _wrap(label, module, path)]
    _post_worker_init(worker)
    folder = Path(os.environ["BENCH_STAGES_DIR"])
    snapshots = iter(range(1_000_000))

    def dump(*_: Any) -> None:
        data = {"totals": dict(TOTALS), "missing": missing}
        (folder / f"{os.getpid()}-{next(snapshots)}.json").write_text(json.dumps(data))

    signal.signal(signal.SIGUSR2, dump)
