"""The prediction log: a bounded in-memory buffer written to the database in batches.

A row's ``inputs`` are the scoring request as the client sent it when it was JSON (``{"dataframe_split":
...}``, ``{"instances": ...}``, with ``params``), so the writer does not encode it again and a
logged request replays as is to /predict or ``mlflow models serve``; CSV requests, and requests
carrying a ``unit_key`` (kept only hashed), are stored as ``{"dataframe_split": ...}``. Read
them with ``input_records``, which also reads the forms written by earlier versions.

Nothing that can be kept is lost: the queue is bounded in entries and in bytes (what does not fit
is dropped and counted); a batch the database refuses because it is locked or unreachable goes
back to the front of the queue and is retried with backoff; only a row the database refuses for
its content is dropped (counted). Text PostgreSQL's ``jsonb`` cannot hold (``\\u0000``, a lone
surrogate, a byte-order mark) is stored with U+FFFD in its place. ``enqueued``, ``written``,
``retried`` and ``dropped`` counters make any loss visible.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import (
    DEFAULT_DB_ALIAS,
    InterfaceError,
    OperationalError,
    close_old_connections,
    connections,
    transaction,
)
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
    from routing.serving.payloads import FORMATS, PayloadError, parse_document

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
        return body.decode("utf-8-sig")  # without a byte-order mark: jsonb refuses one
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
    # surrogatepass: a key is hashed whatever it holds (parse refuses lone surrogates in the body).
    return hashlib.sha256(unit_key.encode("utf-8", "surrogatepass")).hexdigest() if unit_key else ""


def entry_bytes(entry: LogEntry) -> int:
    """About how much memory a queued entry holds: its body, or its rows, and its outputs."""
    cells = len(entry.rows) * len(entry.rows[0]) if entry.rows and isinstance(entry.rows[0], list) else 0
    return 256 + len(entry.request_json) + 16 * (cells + len(entry.outputs))


class PredictionLogBuffer:
    """Bounded buffer plus the thread that writes it out.

    A deque: appending and popping are atomic under the GIL and the writer polls, so the request
    path wakes no one; it takes one uncontended lock to keep the byte count exact.
    """

    def __init__(self) -> None:
        self._entries: deque[LogEntry] = deque()
        self._bytes = 0
        self._pid = 0
        self._lock = threading.Lock()
        self._bytes_lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._backoff = 0.0
        self._retry_at = 0.0
        self._stop = threading.Event()
        self.dropped = 0

    def _ensure(self) -> deque[LogEntry]:
        """The buffer of this process, with its writer thread started (once per process)."""
        if self._pid != os.getpid():
            with self._lock:
                if self._pid != os.getpid():
                    self._pid = os.getpid()
                    self._entries = deque()  # a forked child starts empty
                    self._bytes = 0
                    self._stop = threading.Event()
                    if settings.PREDICTION_LOG_IN_BACKGROUND:
                        threading.Thread(target=self._run, name="prediction-log", daemon=True).start()
        return self._entries

    def reset(self) -> None:
        """Forget queued entries, counts and backoff (tests: entries of a rolled-back database)."""
        self._ensure().clear()
        self._bytes = 0
        self._backoff = self._retry_at = 0.0
        self.dropped = 0

    def queued(self) -> list[LogEntry]:
        """The entries waiting for the writer, oldest first (tests, diagnostics)."""
        return list(self._ensure())

    @property
    def queued_bytes(self) -> int:
        return self._bytes

    def record(self, entry: LogEntry) -> bool:
        """Queue one entry without blocking; False (and counted) when the buffer is full."""
        if not settings.TELEMETRY_ENABLED:
            return True
        entries = self._entries if self._pid == os.getpid() else self._ensure()
        size = entry_bytes(entry)
        metrics.record_log_enqueued(entry.endpoint)
        with self._bytes_lock:
            full = (
                len(entries) >= settings.PREDICTION_LOG_BUFFER_SIZE
                or self._bytes + size > settings.PREDICTION_LOG_BUFFER_BYTES
            )
            if not full:
                self._bytes += size
                entries.append(entry)
        if full:
            self._count_dropped(entry.endpoint, 1)
        return not full

    def _count_dropped(self, endpoint: str, rows: int) -> None:
        self.dropped += rows
        metrics.record_log_dropped(endpoint, rows)

    def _release(self, entries: list[LogEntry]) -> None:
        size = sum(entry_bytes(e) for e in entries)
        with self._bytes_lock:
            self._bytes -= size

    def flush(self, limit: int | None = None) -> int:
        """Write what is queued (up to ``limit`` entries); returns the rows written.

        A batch the database cannot take now (locked, unreachable) goes back to the front of the
        queue in its order, and the background writer waits before the next try (doubling).
        """
        buffered = self._ensure()
        with self._flush_lock:
            entries: list[LogEntry] = []
            while buffered and (limit is None or len(entries) < limit):
                entries.append(buffered.popleft())
            if not entries:
                return 0
            written, again = _insert(entries, self._count_dropped)
            if again:
                buffered.extendleft(reversed(again))
                for endpoint, rows in Counter(e.endpoint for e in again).items():
                    metrics.record_log_retried(endpoint, rows)
                self._backoff = min(
                    settings.PREDICTION_LOG_RETRY_MAX_SECONDS,
                    self._backoff * 2 or settings.PREDICTION_LOG_RETRY_SECONDS,
                )
                self._retry_at = time.monotonic() + self._backoff
            else:
                self._backoff = 0.0
            kept = {id(e) for e in again}
            self._release([e for e in entries if id(e) not in kept])
            return written

    def stop(self) -> None:
        """Stop this process's writer thread after its current pass (tests)."""
        self._stop.set()

    def _run(self) -> None:
        stop = self._stop
        while not stop.wait(settings.PREDICTION_LOG_FLUSH_SECONDS):
            if time.monotonic() < self._retry_at:
                continue
            try:
                close_old_connections()
                while (
                    self.flush(limit=settings.PREDICTION_LOG_BATCH_SIZE) >= settings.PREDICTION_LOG_BATCH_SIZE
                ):
                    pass
            except Exception:  # the writer must outlive a bad batch
                logger.exception("prediction log writer failed")
        connections.close_all()


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


# What PostgreSQL's jsonb refuses in JSON text: the escapes of NUL and of surrogates (a lone one
# is refused; a pair is re-checked at no harm). A plain search, so clean text costs one scan.
_SUSPECT = re.compile(r"\\u(?:0000|[dD][89a-fA-F][0-9a-fA-F]{2})")


def _clean(value: Any) -> Any:
    if isinstance(value, str):
        # Through UTF-16 with surrogatepass: pairs become their character, a lone one U+FFFD.
        text = value.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
        return text.replace("\x00", "\ufffd")
    if isinstance(value, list):
        return [_clean(v) for v in value]
    if isinstance(value, dict):
        return {_clean(k): _clean(v) for k, v in value.items()}
    return value


def storable_json(text: str) -> str:
    """JSON text every backend stores: no byte-order mark, NUL and lone surrogates as U+FFFD."""
    if text.startswith("\ufeff"):
        text = text[1:]
    if "\\" not in text or not _SUSPECT.search(text):
        return text
    return _dumps(_clean(json.loads(text)))


def _values(e: LogEntry) -> tuple[Any, ...]:
    return (
        e.created_at,
        e.request_id,
        e.endpoint,
        e.variant,
        e.model_name,
        e.model_version,
        e.is_shadow,
        storable_json(e.request_json or _inputs_json(e.columns, e.rows)),
        storable_json(_dumps(e.outputs)),
        e.latency_ms,
        hash_unit_key(e.unit_key),
        e.token_name,
        e.agreement,
        e.fallback_from,
    )


# Rows per INSERT statement: 100 x 14 parameters stays far below SQLite's (32,766) and
# PostgreSQL's (65,535) limits.
_ROWS_PER_STATEMENT = 100


# The database cannot take writes now, but will: SQLite's "database is locked", a PostgreSQL
# that is down or restarting. Such a batch is kept; anything else is about the rows themselves.
_UNAVAILABLE = (OperationalError, InterfaceError)


def _insert(entries: list[LogEntry], count_dropped: Any) -> tuple[int, list[LogEntry]]:
    """Insert ``entries`` in one transaction: (rows written, entries to put back in the queue).

    Multi-row ``INSERT ... VALUES (...), (...)``: one statement per hundred rows instead of one
    per row, so the database driver releases and re-takes the GIL once per hundred rows, not per
    row, and the request threads of this worker are interrupted that much less. When the database
    is unavailable the whole batch comes back; when it refuses the content, the rows are tried
    one by one so one bad row costs that row only.
    """
    try:
        _execute_insert(entries)
    except _UNAVAILABLE as exc:
        logger.warning("prediction log batch of %d rows kept for a retry: %s", len(entries), exc)
        return 0, entries
    except Exception:
        if len(entries) == 1:
            logger.exception(
                "prediction log row for %s refused by the database; 1 row lost", entries[0].endpoint
            )
            count_dropped(entries[0].endpoint, 1)
            return 0, []
        logger.warning("prediction log batch of %d rows refused; writing them one by one", len(entries))
        written, again = 0, []
        for e in entries:
            w, a = _insert([e], count_dropped)
            written, again = written + w, again + a
        return written, again
    for endpoint, rows in Counter(e.endpoint for e in entries).items():
        metrics.record_log_written(endpoint, rows)
    return len(entries), []


def _execute_insert(entries: list[LogEntry]) -> None:
    from routing.models import PredictionLog

    meta = PredictionLog._meta
    fields = [meta.get_field(name) for name in _COLUMNS]
    db = connections[DEFAULT_DB_ALIAS]
    quote = db.ops.quote_name
    # Table and column names come from the model, quoted; every value is a parameter.
    columns = ", ".join(quote(f.column) for f in fields)
    head = f"INSERT INTO {quote(meta.db_table)} ({columns}) VALUES "  # noqa: S608
    row_placeholders = "(" + ", ".join(["%s"] * len(fields)) + ")"
    adapt_datetime = db.ops.adapt_datetimefield_value
    rows = [list(_values(e)) for e in entries]
    for row in rows:
        row[0] = adapt_datetime(row[0])
    with transaction.atomic(using=db.alias), db.cursor() as cursor:
        for start in range(0, len(rows), _ROWS_PER_STATEMENT):
            chunk = rows[start : start + _ROWS_PER_STATEMENT]
            sql = head + ", ".join([row_placeholders] * len(chunk))
            cursor.execute(sql, [value for row in chunk for value in row])


def prune(older_than_days: int, batch_size: int = 5_000) -> int:
    """Delete log rows older than ``older_than_days`` days, ``batch_size`` rows per transaction.

    One DELETE of a month of rows would hold SQLite's write lock (and a PostgreSQL table's vacuum
    debt) for minutes; short batches let the log writer and the admin in between them.
    """
    from routing.models import PredictionLog

    cutoff = timezone.now() - timezone.timedelta(days=older_than_days)
    old = PredictionLog.objects.filter(created_at__lt=cutoff)
    deleted = 0
    while True:
        ids = list(old.values_list("pk", flat=True)[:batch_size])
        if not ids:
            return deleted
        deleted += PredictionLog.objects.filter(pk__in=ids).delete()[0]
