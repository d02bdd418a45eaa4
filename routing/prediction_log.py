"""The prediction log: a bounded in-memory buffer written to the database in batches.

A row's ``inputs`` are the scoring request as the client sent it when it was JSON (``{"dataframe_split":
...}``, ``{"instances": ...}``, with ``params``), so the writer does not encode it again and a
logged request replays as is to /predict or ``mlflow models serve``; CSV requests, and requests
carrying a ``unit_key`` (kept only hashed), are stored as ``{"dataframe_split": ...}``. Read
them with ``input_records``, which also reads the forms written by earlier versions.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
from collections import deque
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
    request_json: str = ""  # the JSON body as sent, when it can be stored as is (see above)
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
    from routing.payloads import FORMATS, PayloadError, parse_document

    if isinstance(inputs, dict) and any(k in inputs for k in FORMATS):
        try:
            payload = parse_document(inputs)
        except PayloadError:
            return []
        columns = payload.columns or []
        return [dict(zip(columns, row, strict=False)) for row in payload.rows] if columns else []
    if isinstance(inputs, dict):
        return []
    return [r for r in inputs or [] if isinstance(r, dict)]  # one object per row, the first form


def request_json_for_log(body: bytes, payload: Any) -> str:
    """The body to store as is, or "" when the writer must encode the rows instead."""
    if payload.format == "csv" or payload.unit_key:
        return ""
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:  # UTF-16/32 JSON: valid for json.loads, not for the database as text
        return ""


def logged_inputs(request_json: str, columns: list[str], rows: list[list[Any]]) -> dict[str, Any]:
    """A ``LogEntry``'s inputs: the body as sent when there is one, else the rows to encode.

    With the body kept, the parsed rows are not: entries wait up to a flush interval, and
    100-row batches held by the thousand made the collector's full passes take ~100 ms (p99).
    """
    if request_json:
        return {"request_json": request_json, "columns": [], "rows": []}
    return {"request_json": "", "columns": columns, "rows": rows}


def hash_unit_key(unit_key: str) -> str:
    return hashlib.sha256(unit_key.encode("utf-8")).hexdigest() if unit_key else ""


class PredictionLogBuffer:
    """Bounded buffer plus the thread that writes it out.

    A deque, not a ``queue.Queue``: appending and popping are atomic under the GIL, so the request
    path takes no lock and wakes no one (the writer polls); the bound is checked before appending.
    """

    def __init__(self) -> None:
        self._entries: deque[LogEntry] = deque()
        self._pid = 0
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self.dropped = 0
        self.written = 0

    def _ensure(self) -> deque[LogEntry]:
        """The buffer of this process, with its writer thread started (once per process)."""
        if self._pid != os.getpid():
            with self._lock:
                if self._pid != os.getpid():
                    self._pid = os.getpid()
                    self._entries = deque()  # a forked child starts empty
                    if settings.PREDICTION_LOG_IN_BACKGROUND:
                        threading.Thread(target=self._run, name="prediction-log", daemon=True).start()
        return self._entries

    def reset(self) -> None:
        """Forget queued entries and counts (tests: entries of a rolled-back database)."""
        self._ensure().clear()
        self.dropped = 0

    def record(self, entry: LogEntry) -> bool:
        """Queue one entry without blocking; False (and counted) when the buffer is full."""
        if not settings.TELEMETRY_ENABLED:
            return True
        entries = self._entries if self._pid == os.getpid() else self._ensure()
        if len(entries) >= settings.PREDICTION_LOG_BUFFER_SIZE:
            self._count_dropped(entry.endpoint, 1)
            return False
        entries.append(entry)
        return True

    def _count_dropped(self, endpoint: str, rows: int) -> None:
        self.dropped += rows
        metrics.record_log_dropped(endpoint, rows)

    def pending(self) -> int:
        return len(self._ensure())

    def flush(self, limit: int | None = None) -> int:
        """Write what is queued (up to ``limit`` entries); returns the rows written."""
        buffered = self._ensure()
        with self._flush_lock:
            entries: list[LogEntry] = []
            while buffered and (limit is None or len(entries) < limit):
                entries.append(buffered.popleft())
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
# (model instances, one SQL fragment per value: ~70 us a row, now ~20) and sends parametrised
# multi-row INSERTs (see _insert): JSON columns as JSON text (a text column on SQLite, cast to
# jsonb by PostgreSQL), dates through the backend's own adapter, so the ORM reads rows back as usual.
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


def _inputs_json(columns: list[str], rows: list[list[Any]]) -> str:
    """Rows without a body to store (CSV, ``unit_key`` in the body) as an MLflow scoring request."""
    if not columns:
        return _dumps({"instances": rows})
    return _dumps({"dataframe_split": {"columns": columns, "data": rows}})


def _values(e: LogEntry) -> tuple[Any, ...]:
    return (
        e.created_at,
        e.request_id,
        e.endpoint,
        e.variant,
        e.model_name,
        e.model_version,
        e.is_shadow,
        e.request_json or _inputs_json(e.columns, e.rows),
        _dumps(e.outputs),
        e.latency_ms,
        hash_unit_key(e.unit_key),
        e.token_name,
        e.agreement,
        e.fallback_from,
    )


# Rows per INSERT statement: 100 x 14 parameters stays far below SQLite's (32,766) and
# PostgreSQL's (65,535) limits.
_ROWS_PER_STATEMENT = 100


def _insert(entries: list[LogEntry], count_dropped: Any) -> int:
    """Insert ``entries`` in one transaction; if it fails, row by row, so one bad row costs one.

    Multi-row ``INSERT ... VALUES (...), (...)``: one statement per hundred rows instead of one
    per row, so the database driver releases and re-takes the GIL once per hundred rows, not per
    row, and the request threads of this worker are interrupted that much less.
    """
    from routing.models_serving import PredictionLog

    meta = PredictionLog._meta
    fields = [meta.get_field(name) for name in _COLUMNS]
    db = connections[DEFAULT_DB_ALIAS]
    quote = db.ops.quote_name
    # Table and column names come from the model, quoted; every value is a parameter.
    columns = ", ".join(quote(f.column) for f in fields)
    head = f"INSERT INTO {quote(meta.db_table)} ({columns}) VALUES "  # noqa: S608
    row_placeholders = "(" + ", ".join(["%s"] * len(fields)) + ")"
    adapt_datetime = db.ops.adapt_datetimefield_value

    try:
        rows = [list(_values(e)) for e in entries]
        for row in rows:
            row[0] = adapt_datetime(row[0])
        with transaction.atomic(using=db.alias), db.cursor() as cursor:
            for start in range(0, len(rows), _ROWS_PER_STATEMENT):
                chunk = rows[start : start + _ROWS_PER_STATEMENT]
                sql = head + ", ".join([row_placeholders] * len(chunk))
                cursor.execute(sql, [value for row in chunk for value in row])
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
