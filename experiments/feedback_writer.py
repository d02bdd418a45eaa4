"""Feedback off the request path: a bounded queue per process and a thread that writes it.

The same shape as routing's prediction-log writer (``routing.serving.prediction_log``): the
request thread appends and returns; a daemon thread writes batches every
``FEEDBACK_FLUSH_SECONDS`` in one transaction; a batch the database cannot take now (locked,
down) goes back to the front of the queue and is retried with backoff. Ground truth is an upsert
on (endpoint, request id, row): sent again, its label is replaced and ``updates`` counts it.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections import deque
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

logger = logging.getLogger(__name__)

_UNAVAILABLE = (OperationalError, InterfaceError)


@dataclass(frozen=True, slots=True)
class FeedbackEntry:
    """One checked, attributed feedback item waiting to be written."""

    index: int
    endpoint: str
    kind: str
    variant: str
    model_version: int
    predicted_at: datetime
    received_at: datetime = field(default_factory=timezone.now)
    request_id: str = ""
    row: int = 0
    unit_key_hash: str = ""
    metric: str = ""
    label: Any = None
    value: float | None = None
    prediction: Any = None
    is_update: bool = False

    @property
    def key(self) -> tuple[str, str, int] | None:
        return (self.endpoint, self.request_id, self.row) if self.kind == "ground_truth" else None


_COLUMNS = (
    "endpoint",
    "kind",
    "request_id",
    "row",
    "unit_key_hash",
    "metric",
    "label",
    "value",
    "prediction",
    "variant",
    "model_version",
    "predicted_at",
    "received_at",
    "updates",
)


class FeedbackBuffer:
    """Bounded per-process queue plus its writer thread (started on first use in each process)."""

    def __init__(self) -> None:
        self._entries: deque[FeedbackEntry] = deque()
        self._pid = 0
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._retry_at = 0.0
        self._backoff = 0.0
        self.dropped = 0

    def _ensure(self) -> deque[FeedbackEntry]:
        if self._pid != os.getpid():
            with self._lock:
                if self._pid != os.getpid():
                    self._pid = os.getpid()
                    self._entries = deque()
                    if settings.FEEDBACK_WRITE_IN_BACKGROUND:
                        threading.Thread(target=self._run, name="feedback-writer", daemon=True).start()
        return self._entries

    def reset(self) -> None:
        """Forget what is queued (tests: entries of a rolled-back database)."""
        self._ensure().clear()
        self._retry_at = self._backoff = 0.0

    def queued(self) -> int:
        return len(self._ensure())

    def record(self, entry: FeedbackEntry) -> bool:
        """Queue one entry; False when the queue is full (the caller refuses the item with a 503)."""
        entries = self._ensure()
        if len(entries) >= settings.FEEDBACK_BUFFER_SIZE:
            self.dropped += 1
            return False
        entries.append(entry)
        return True

    def flush(self, limit: int | None = None) -> int:
        """Write up to ``limit`` queued entries; the number written (0 when put back for a retry)."""
        entries_q = self._ensure()
        with self._flush_lock:
            batch: list[FeedbackEntry] = []
            while entries_q and (limit is None or len(batch) < limit):
                batch.append(entries_q.popleft())
            if not batch:
                return 0
            try:
                _write(batch)
            except _UNAVAILABLE as exc:
                logger.warning("feedback batch of %d kept for a retry: %s", len(batch), exc)
                entries_q.extendleft(reversed(batch))
                self._backoff = min(30.0, self._backoff * 2 or settings.FEEDBACK_FLUSH_SECONDS)
                self._retry_at = time.monotonic() + self._backoff
                return 0
            self._backoff = 0.0
            return len(batch)

    def _run(self) -> None:
        while True:
            time.sleep(settings.FEEDBACK_FLUSH_SECONDS)
            if time.monotonic() < self._retry_at:
                continue
            try:
                close_old_connections()
                while self.flush(limit=settings.FEEDBACK_BATCH_SIZE) >= settings.FEEDBACK_BATCH_SIZE:
                    pass
            except Exception:  # the writer must outlive a bad batch
                logger.exception("feedback writer failed; batch lost")


FEEDBACK_BUFFER = FeedbackBuffer()


def _collapsed(batch: list[FeedbackEntry]) -> list[tuple[FeedbackEntry, int]]:
    """One row per ground-truth key (the last sent wins; the others count as updates): a
    multi-row upsert may not touch one row twice (PostgreSQL refuses it)."""
    last: dict[tuple[str, str, int], tuple[FeedbackEntry, int]] = {}
    out: list[tuple[FeedbackEntry, int]] = []
    for entry in batch:
        key = entry.key
        if key is None:
            out.append((entry, 0))
        else:
            earlier = last.get(key)
            last[key] = (entry, 0 if earlier is None else earlier[1] + 1)
    return out + list(last.values())


def _write(batch: list[FeedbackEntry]) -> None:
    from experiments.models import Feedback

    db = connections[DEFAULT_DB_ALIAS]
    quote = db.ops.quote_name
    table = quote(Feedback._meta.db_table)
    columns = ", ".join(quote(Feedback._meta.get_field(c).column) for c in _COLUMNS)
    adapt = db.ops.adapt_datetimefield_value
    rows = _collapsed(batch)
    placeholders = "(" + ", ".join(["%s"] * len(_COLUMNS)) + ")"
    # Conflicts only on ground truth (the partial unique index); outcomes are plain inserts.
    conflict = (
        f" ON CONFLICT ({quote('endpoint')}, {quote('request_id')}, {quote('row')}) WHERE {quote('kind')} = 'ground_truth'"
        f" DO UPDATE SET {quote('label')} = excluded.{quote('label')}, {quote('value')} = excluded.{quote('value')},"
        f" {quote('received_at')} = excluded.{quote('received_at')},"
        f" {quote('updates')} = {table}.{quote('updates')} + excluded.{quote('updates')} + 1"
    )
    with transaction.atomic(using=db.alias), db.cursor() as cursor:
        for start in range(0, len(rows), 100):
            chunk = rows[start : start + 100]
            params: list[Any] = []
            for e, extra_updates in chunk:
                params += [
                    e.endpoint,
                    e.kind,
                    e.request_id,
                    e.row,
                    e.unit_key_hash,
                    e.metric,
                    None if e.label is None else json.dumps(e.label),
                    e.value,
                    None if e.prediction is None else json.dumps(e.prediction),
                    e.variant,
                    e.model_version,
                    adapt(e.predicted_at),
                    adapt(e.received_at),
                    extra_updates,
                ]
            values = ", ".join([placeholders] * len(chunk))
            # Table and column names come from the model, quoted; every value is a parameter.
            sql = f"INSERT INTO {table} ({columns}) VALUES {values}{conflict}"  # noqa: S608
            cursor.execute(sql, params)
