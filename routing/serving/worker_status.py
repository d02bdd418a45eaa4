"""This worker's status row: what it loaded, what failed and why, written off the request path.

``report`` writes ``routing.models.WorkerStatus`` for (host, pid, start time) when what the
worker holds changed since the last write, or when the heartbeat is due
(``WORKER_HEARTBEAT_SECONDS``); otherwise it does nothing, not even a query. The refresher thread
calls it after every refresh (``routing.serving.worker``). Governance reads the live rows before a
promotion; the admin lists them. Rows whose heartbeat stopped a day ago are deleted here.
"""

from __future__ import annotations

import os
import socket
import time
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.utils import timezone

from routing.models import WorkerStatus
from routing.serving.loader import STORE
from routing.serving.table import TABLE

HOST = socket.gethostname()[:255]
DELETE_AFTER = timedelta(days=1)

_state: dict[str, Any] = {}


def _started_at() -> datetime:
    if _state.get("pid") != os.getpid():  # a new process (fork): a new row
        reset()
        _state.update(pid=os.getpid(), started_at=timezone.now())
    return _state["started_at"]


def report(force: bool = False) -> bool:
    """Write this worker's row if it changed or the heartbeat is due; True when written."""
    started_at = _started_at()
    loaded, failures = STORE.status()
    snapshot = TABLE.snapshot
    now_state = (loaded, failures, snapshot.generation if snapshot else 0)
    due = time.monotonic() - _state.get("written_at", -1e18) >= settings.WORKER_HEARTBEAT_SECONDS
    if not force and not due and now_state == _state.get("last"):
        return False
    now = timezone.now()
    WorkerStatus.objects.update_or_create(
        host=HOST,
        pid=os.getpid(),
        started_at=started_at,
        defaults={"heartbeat_at": now, "loaded": loaded, "failures": failures, "generation": now_state[2]},
    )
    if time.monotonic() - _state.get("pruned_at", -1e18) > 3600:
        WorkerStatus.objects.filter(heartbeat_at__lt=now - DELETE_AFTER).delete()
        _state["pruned_at"] = time.monotonic()
    _state.update(last=now_state, written_at=time.monotonic())
    return True


def reset() -> None:
    """Forget what was written (tests: each has a fresh database)."""
    _state.clear()
