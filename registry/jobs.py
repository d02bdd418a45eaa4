"""Leases that let one worker at a time run a background job, and enqueue-once flags.

Celery may deliver a job twice: two beats, a retried webhook, a message given back after its
worker died. So a task takes a named lease in the database before it works, and releases it
after. The row is locked (``select_for_update(skip_locked=True)``) only for the milliseconds
it takes to read and write it; the work itself, which may wait on MLflow, runs outside any
transaction. A lease expires after ``ttl`` (the task's hard time limit and a margin), so a
killed holder cannot block a job for longer than that, and the same task id (the message
delivered again after its worker died) may take its own lease back at once.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from registry.models import JobLock


def _row_for_update(name: str, *, skip_locked: bool) -> JobLock | None:
    JobLock.objects.get_or_create(name=name)
    return JobLock.objects.select_for_update(skip_locked=skip_locked).filter(name=name).first()


def job_lease_acquire(*, name: str, holder: str, ttl: timedelta, min_gap: timedelta | None = None) -> bool:
    """Take the lease ``name`` for ``holder``; False when another holder has it (or had it
    successfully less than ``min_gap`` ago: a duplicate delivery of a periodic job)."""
    now = timezone.now()
    with transaction.atomic():
        row = _row_for_update(name, skip_locked=True)
        if row is None:  # another worker is taking it right now
            return False
        if row.holder != holder:
            if row.locked_until is not None and row.locked_until > now:
                return False
            if min_gap and row.last_succeeded_at and now - row.last_succeeded_at < min_gap:
                return False
        row.holder, row.locked_until, row.last_started_at = holder, now + ttl, now
        row.save(update_fields=["holder", "locked_until", "last_started_at"])
    return True


def job_lease_release(*, name: str, holder: str, succeeded: bool) -> None:
    """Give the lease back (only its holder can); a success starts the ``min_gap`` period."""
    with transaction.atomic():
        row = JobLock.objects.select_for_update().filter(name=name, holder=holder).first()
        if row is None:
            return
        row.holder, row.locked_until = "", None
        if succeeded:
            row.last_succeeded_at = timezone.now()
        row.save(update_fields=["holder", "locked_until", "last_succeeded_at"])


def job_mark_pending(*, name: str, stale_after: timedelta) -> bool:
    """True when the caller should enqueue the job: no run of it is waiting already.

    A flag older than ``stale_after`` is taken to be a lost message and enqueued again.
    """
    now = timezone.now()
    with transaction.atomic():
        row = _row_for_update(name, skip_locked=False)
        assert row is not None
        if row.pending_since is not None and now - row.pending_since < stale_after:
            return False
        row.pending_since = now
        row.save(update_fields=["pending_since"])
    return True


def job_clear_pending(*, name: str) -> None:
    """The waiting run has started (or could not be sent): the next request enqueues again."""
    JobLock.objects.filter(name=name).update(pending_since=None)


# What a task returns when it did not do the work itself (counted by outcome in the task metrics).
SKIPPED = "skipped"  # another worker holds the lease, or the periodic job ran within its period
DEFERRED = "deferred"  # sent again for later: the same job is running elsewhere right now


def task_lease_ttl() -> timedelta:
    """How long a lease lasts: the hard time limit kills the task before it runs out."""
    return timedelta(seconds=settings.CELERY_TASK_TIME_LIMIT + 30)


@contextmanager
def job_lease(
    *, name: str, holder: str, ttl: timedelta | None = None, min_gap: timedelta | None = None
) -> Iterator[bool]:
    """``with job_lease(...) as acquired:`` holds the lease for the block when ``acquired``.

    The lease is released when the block ends; only a block that ends without an exception
    counts as a success (and starts ``min_gap``).
    """
    acquired = job_lease_acquire(name=name, holder=holder, ttl=ttl or task_lease_ttl(), min_gap=min_gap)
    succeeded = False
    try:
        yield acquired
        succeeded = True
    finally:
        if acquired:
            job_lease_release(name=name, holder=holder, succeeded=succeeded)


def periodic_job(name: str, holder: str) -> AbstractContextManager[bool]:
    """The lease of a job beat sends every ``settings.SCHEDULE_SECONDS[name]``: one run per half
    period at most, whatever number of beats or duplicate deliveries sent it."""
    period = settings.SCHEDULE_SECONDS.get(name, 0)
    return job_lease(name=name, holder=holder, min_gap=timedelta(seconds=period / 2))
