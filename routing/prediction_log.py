"""The prediction log: a bounded in-memory buffer written to the database in batches.

A row's ``inputs`` are stored as MLflow's ``dataframe_split`` (``{"columns": [...], "data":
[[...], ...]}``; only ``data`` when the request had no column names), so a logged request can be
replayed as ``{"dataframe_split": inputs}`` to /predict or ``mlflow models serve``. Read them with
``input_records``, which also reads the list-of-objects rows written before.

``record`` is the only thing the request path calls: a non-blocking put. A background thread
drains the buffer every ``PREDICTION_LOG_FLUSH_SECONDS`` (or when it holds a full batch) and
inserts the rows in one statement. When the buffer is full, or a write fails, the rows lost are counted in
``controlplane_prediction_log_dropped_total`` and in ``BUFFER.dropped``: never silently.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import queue
import threading
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, close_old_connections, connections, transaction
from django.utils import timezone

from monitoring import metrics

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class LogEntry:
    """What the request path hands over; turned into a row by the writer thread."""

    request_id: str
    endpoint: str
    variant: str
    model_name: str
    model_version: int
    columns: list[str]
    rows: list[list[Any]]
    outputs: list[Any]
    latency_ms: float
    unit_key: str = ""
    token_name: str = ""
    is_shadow: bool = False
    agreement: float | None = None
    fallback_from: str = ""
    created_at: datetime = field(default_factory=timezone.now)  # when answered, not when written


def json_default(value: Any) -> Any:
    """NumPy scalars and arrays (from a pyfunc model's answer) as plain JSON values."""
    if hasattr(value, "item"):
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)


def input_records(inputs: Any) -> list[dict[str, Any]]:
    """A logged row's inputs as one ``{column: value}`` dict per row (none without column names)."""
    if isinstance(inputs, dict):
        columns = inputs.get("columns") or []
        return [dict(zip(columns, row, strict=False)) for row in inputs.get("data") or []] if columns else []
    return [r for r in inputs or [] if isinstance(r, dict)]  # rows logged before the dataframe_split form


def hash_unit_key(unit_key: str) -> str:
    return hashlib.sha256(unit_key.encode("utf-8")).hexdigest() if unit_key else ""


class PredictionLogBuffer:
    """Bounded queue plus the thread that writes it out."""

    def __init__(self) -> None:
        self._queue: queue.Queue[LogEntry] | None = None
        self._pid = 0
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self.dropped = 0
        self.written = 0

    def _ensure(self) -> queue.Queue[LogEntry]:
        q = self._queue
        if q is not None and self._pid == os.getpid():
            return q
        with self._lock:
            if self._queue is None or self._pid != os.getpid():
                self._pid = os.getpid()
                self._queue = queue.Queue(maxsize=settings.PREDICTION_LOG_BUFFER_SIZE)
                if settings.PREDICTION_LOG_IN_BACKGROUND:
                    threading.Thread(target=self._run, name="prediction-log", daemon=True).start()
            return self._queue

    def record(self, entry: LogEntry) -> bool:
        """Queue one entry without blocking; False (and counted) when the buffer is full."""
        if not settings.TELEMETRY_ENABLED:
            return True
        try:
            self._ensure().put_nowait(entry)
        except queue.Full:
            self._count_dropped(entry.endpoint, 1)
            return False
        return True

    def _count_dropped(self, endpoint: str, rows: int) -> None:
        self.dropped += rows
        metrics.record_log_dropped(endpoint, rows)

    def pending(self) -> int:
        return self._ensure().qsize()

    def flush(self, limit: int | None = None) -> int:
        """Write what is queued (up to ``limit`` entries); returns the rows written."""
        q = self._ensure()
        with self._flush_lock:
            entries: list[LogEntry] = []
            while limit is None or len(entries) < limit:
                try:
                    entries.append(q.get_nowait())
                except queue.Empty:
                    break
            if not entries:
                return 0
            written = _insert(entries, self._count_dropped)
            self.written += written
            return written

    def _run(self) -> None:
        stop = threading.Event()
        while not stop.wait(settings.PREDICTION_LOG_FLUSH_SECONDS):
            try:
                close_old_connections()
                while (
                    self.flush(limit=settings.PREDICTION_LOG_BATCH_SIZE) >= settings.PREDICTION_LOG_BATCH_SIZE
                ):
                    pass
            except Exception:  # the writer must outlive a bad batch
                logger.exception("prediction log writer failed")


BUFFER = PredictionLogBuffer()

# The writer competes with /predict for the worker's CPU, so it skips the ORM's per-object work
# (model instances, one SQL fragment per value: ~70 us a row, now ~20) and sends one parametrised
# INSERT with executemany: JSON columns as JSON text (a text column on SQLite, cast to jsonb by
# PostgreSQL), dates through the backend's own adapter, so the ORM reads rows back as usual.
_COLUMNS = (
    "created_at",
    "request_id",
    "endpoint",
    "variant",
    "model_name",
    "model_version",
    "is_shadow",
    "inputs",
    "outputs",
    "latency_ms",
    "unit_key_hash",
    "token_name",
    "agreement",
    "fallback_from",
)


_dumps = json.JSONEncoder(default=json_default, separators=(",", ":")).encode
_column_json: dict[tuple[str, ...], str] = {}  # a version's columns, encoded once


def _inputs_json(columns: list[str], rows: list[list[Any]]) -> str:
    """``{"columns": ..., "data": ...}`` as JSON text, without re-encoding the column names each time."""
    if not columns:
        return '{"data":' + _dumps(rows) + "}"
    key = tuple(columns)
    head = _column_json.get(key)
    if head is None:
        if len(_column_json) > 1000:  # bounded: a worker sees a handful of schemas
            _column_json.clear()
        head = _column_json[key] = _dumps(list(columns))
    return '{"columns":' + head + ',"data":' + _dumps(rows) + "}"


def _values(e: LogEntry) -> tuple[Any, ...]:
    return (
        e.created_at,
        e.request_id,
        e.endpoint,
        e.variant,
        e.model_name,
        e.model_version,
        e.is_shadow,
        _inputs_json(e.columns, e.rows),
        _dumps(e.outputs),
        e.latency_ms,
        hash_unit_key(e.unit_key),
        e.token_name,
        e.agreement,
        e.fallback_from,
    )


def _insert(entries: list[LogEntry], count_dropped: Any) -> int:
    """Insert ``entries`` in one batch; if the batch fails, row by row, so one bad row costs one."""
    from routing.models_serving import PredictionLog

    meta = PredictionLog._meta
    fields = [meta.get_field(name) for name in _COLUMNS]
    db = connections[DEFAULT_DB_ALIAS]
    quote = db.ops.quote_name
    # Table and column names come from the model, quoted; every value is a parameter.
    columns = ", ".join(quote(f.column) for f in fields)
    placeholders = ", ".join(["%s"] * len(fields))
    sql = f"INSERT INTO {quote(meta.db_table)} ({columns}) VALUES ({placeholders})"  # noqa: S608
    adapt_datetime = db.ops.adapt_datetimefield_value

    def params(e: LogEntry) -> list[Any]:
        values = list(_values(e))
        values[0] = adapt_datetime(values[0])
        return values

    try:
        rows = [params(e) for e in entries]
        with transaction.atomic(using=db.alias), db.cursor() as cursor:
            cursor.executemany(sql, rows)
        return len(rows)
    except Exception:
        if len(entries) == 1:
            logger.exception(
                "prediction log row for %s could not be written; 1 row lost", entries[0].endpoint
            )
            count_dropped(entries[0].endpoint, 1)
            return 0
    logger.warning("prediction log batch of %d rows failed; writing them one by one", len(entries))
    return sum(_insert([e], count_dropped) for e in entries)


def prune(older_than_days: int) -> int:
    """Delete log rows older than ``older_than_days`` days; returns how many."""
    from routing.models_serving import PredictionLog

    cutoff = timezone.now() - timezone.timedelta(days=older_than_days)
    deleted, _ = PredictionLog.objects.filter(created_at__lt=cutoff).delete()
    return deleted
