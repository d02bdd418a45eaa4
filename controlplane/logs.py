"""Logs people and log pipelines can read: one line per request, JSON or text, written off-thread.

``LOG_FORMAT=json`` (the chart) writes every record as one JSON object with ``python-json-logger``;
``text`` (``make run``) writes the same fields as ``key=value`` after the message. Every record
carries the request id of the request it belongs to (``RequestIdFilter``). The request line itself
(``controlplane.request``: method, path, status, latency, endpoint, variant) is written by
``RequestIdMiddleware`` for /predict and every other route except the probes and /metrics.

The hot path does no synchronous log write: ``BackgroundStreamHandler`` only puts the record on a
queue and a thread of the worker writes it. The thread is started lazily in each process (gunicorn
forks after the settings are loaded, and a thread does not survive a fork) and drained at exit.
"""

from __future__ import annotations

import atexit
import copy
import logging
import os
import queue
import sys
import threading
from typing import Any

from pythonjsonlogger.json import JsonFormatter

REQUEST_FIELDS = (
    "request_id",
    "method",
    "path",
    "status",
    "latency_ms",
    "endpoint",
    "variant",
    "model_version",
)
_STANDARD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName"}


class RequestIdFilter(logging.Filter):
    """Stamps ``request_id`` (from the middleware's context variable) on every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not getattr(record, "request_id", ""):
            from controlplane.middleware import current_request_id

            record.request_id = current_request_id.get()
        return True


def json_formatter() -> logging.Formatter:
    """One JSON object per line: time, level, logger, message and every extra field."""
    return JsonFormatter(
        "{asctime}{levelname}{name}{message}",
        style="{",
        rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
    )


class TextFormatter(logging.Formatter):
    """``time LEVEL logger: message key=value ...``: the extras a JSON line would have, for people."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        extras = {k: v for k, v in record.__dict__.items() if k not in _STANDARD and v not in ("", None)}
        return line + "".join(f" {k}={v}" for k, v in extras.items()) if extras else line


class BackgroundStreamHandler(logging.Handler):
    """Queues records; a per-process thread formats and writes them to stderr."""

    def __init__(self, capacity: int = 10_000) -> None:
        super().__init__()
        # The stream as it is now, like logging.StreamHandler: Celery later replaces sys.stderr
        # with a proxy that logs what is written to it, which would feed these lines back in.
        self.stream = sys.stderr
        self._capacity = capacity
        self._pid = -1
        self._queue: queue.Queue[logging.LogRecord | None] = queue.Queue(capacity)
        self._lock = threading.Lock()
        self.dropped = 0

    def emit(self, record: logging.LogRecord) -> None:
        if self._pid != os.getpid():
            self._start()
        record = copy.copy(record)  # other handlers (pytest's caplog, Sentry) keep the original
        if record.exc_info and not record.exc_text:  # the traceback must be read on this thread
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        record.message = record.getMessage()
        record.msg, record.args, record.exc_info = record.message, None, None
        try:
            self._queue.put_nowait(record)
        except queue.Full:
            self.dropped += 1  # never block a request on a slow log reader

    def _start(self) -> None:
        with self._lock:
            if self._pid == os.getpid():
                return
            self._queue = queue.Queue(self._capacity)
            self._pid = os.getpid()
            threading.Thread(
                target=self._write_forever, args=(self._queue,), name="log-writer", daemon=True
            ).start()
            atexit.register(self.drain)

    def _write_forever(self, records: queue.Queue[logging.LogRecord | None]) -> None:
        while (record := records.get()) is not None:
            try:
                self.stream.write(self.format(record) + "\n")
                self.stream.flush()
            except Exception:  # a broken record must not stop the writer
                self.handleError(record)
            finally:
                records.task_done()
        records.task_done()

    def drain(self, timeout: float = 2.0) -> None:
        """Wait (bounded) until what is queued is written: at exit, and in tests."""
        done = threading.Event()
        threading.Thread(target=lambda: (self._queue.join(), done.set()), daemon=True).start()
        done.wait(timeout)


def logging_config(log_format: str, level: str) -> dict[str, Any]:
    """``settings.LOGGING`` for ``LOG_FORMAT`` (json or text) and ``LOG_LEVEL``."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"request_id": {"()": "controlplane.logs.RequestIdFilter"}},
        "formatters": {
            "json": {"()": "controlplane.logs.json_formatter"},
            "text": {"()": "controlplane.logs.TextFormatter"},
        },
        "handlers": {
            "console": {
                "()": "controlplane.logs.BackgroundStreamHandler",
                "formatter": log_format,
                "filters": ["request_id"],
            }
        },
        "root": {"handlers": ["console"], "level": level},
        "loggers": {
            "django": {"level": "INFO" if level == "DEBUG" else level},
            # The request line replaces Django's own "Not Found: /x" warnings for 4xx answers.
            "django.request": {"level": "ERROR"},
            "django.server": {"level": "WARNING"},
        },
    }
