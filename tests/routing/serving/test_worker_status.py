"""Every worker reports what it loaded and what failed: a status row, written off the request path.

Written when what the worker holds changes and as a heartbeat (``WORKER_HEARTBEAT_SECONDS``);
rows whose heartbeat is older than ``WORKER_STATUS_STALE_SECONDS`` are ignored by readers.
"""

from __future__ import annotations

import os
import socket
from datetime import timedelta

import pytest
from django.utils import timezone

from routing.models import WorkerStatus
from routing.serving import worker_status

pytestmark = pytest.mark.django_db

MIXED = [
    {"name": "champ", "role": "champion", "version": 1, "weight": 90},
    {"name": "broken", "role": "challenger", "version": 96, "weight": 10},  # MLflow has no v96
]


def test_a_worker_reports_what_it_loaded_and_what_failed_with_the_reason(serving):
    serving.endpoint("mixed", MIXED)
    serving.refresh()
    assert worker_status.report() is True
    row = WorkerStatus.objects.get(host=socket.gethostname(), pid=os.getpid())
    assert {"model": "test-shared", "version": 1} in row.loaded
    (failure,) = row.failures
    assert failure["model"] == "test-shared" and failure["version"] == 96 and failure["error"]
    assert row.heartbeat_at > timezone.now() - timedelta(seconds=5)


def test_the_row_is_written_on_change_or_when_the_heartbeat_is_due_only(
    serving, settings, django_assert_num_queries
):
    serving.endpoint("mixed", MIXED)
    serving.refresh()
    assert worker_status.report() is True
    with django_assert_num_queries(0):
        assert worker_status.report() is False  # nothing changed, heartbeat not due
    settings.WORKER_HEARTBEAT_SECONDS = 0
    assert worker_status.report() is True


def test_only_live_rows_count(serving, settings):
    now = timezone.now()
    WorkerStatus.objects.create(host="gone", pid=1, started_at=now, heartbeat_at=now - timedelta(hours=1))
    WorkerStatus.objects.create(host="here", pid=2, started_at=now, heartbeat_at=now)
    assert [w.host for w in WorkerStatus.objects.live()] == ["here"]
