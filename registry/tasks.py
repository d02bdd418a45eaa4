"""Background jobs of the registry mirror: one model when MLflow says it changed, all on a timer.

Thin tasks over ``registry.services.registry_sync``. Syncs of one model never run at the same
time (a per-model lease): a sync that read MLflow earlier must not overwrite one that read it
later. A webhook delivery that arrives while a sync of its model runs sends a new task, which
waits for the running one, so the last change is always read after it happened.
"""

from __future__ import annotations

import random
from datetime import timedelta

from celery import shared_task
from celery.app.task import Task
from django.db import InterfaceError, OperationalError

from registry.audit import MLFLOW, SYSTEM
from registry.jobs import (
    DEFERRED,
    SKIPPED,
    job_clear_pending,
    job_lease,
    job_mark_pending,
    periodic_job,
)
from registry.mlflow_client import MlflowUnavailable
from registry.services import registry_model_names, registry_sync

# MLflow or the database away for a while: retried with backoff (controlplane.celery.ControlPlaneTask).
TRANSIENT_ERRORS = (MlflowUnavailable, OperationalError, InterfaceError)
# A waiting sync older than this is taken for a lost message, and a new delivery enqueues again.
PENDING_STALE_AFTER = timedelta(minutes=10)
# Publishing from a web request: fail within about a second when the broker is down.
PUBLISH_RETRY = {"max_retries": 2, "interval_start": 0.2, "interval_step": 0.3, "interval_max": 0.5}


def model_lease_name(name: str) -> str:
    return f"registry.sync_model:{name}"


def _pending_name(name: str) -> str:
    return f"registry.sync_model.pending:{name}"


def sync_model_request(name: str) -> bool:
    """Send ``sync_model(name)`` unless one is already waiting; True when a task was sent.

    A burst of deliveries for one model sends one task. Raises the broker's error when the
    task cannot be sent (the flag is cleared first, so the next delivery tries again).
    """
    pending = _pending_name(name)
    if not job_mark_pending(name=pending, stale_after=PENDING_STALE_AFTER):
        return False
    try:
        sync_model.apply_async((name,), retry=True, retry_policy=PUBLISH_RETRY)
    except Exception:
        job_clear_pending(name=pending)
        raise
    return True


@shared_task(name="registry.sync_model", bind=True, autoretry_for=TRANSIENT_ERRORS)
def sync_model(self: Task, name: str) -> str:
    """Mirror one registered model from MLflow (a webhook delivery named it)."""
    with job_lease(name=model_lease_name(name), holder=self.request.id) as acquired:
        if not acquired:
            # A sync of this model is running: go after it, so the newest change is read last.
            sync_model.apply_async((name,), countdown=1 + random.random() * 2)
            return DEFERRED
        # From here on a new delivery sends a new task (which will wait for this one).
        job_clear_pending(name=_pending_name(name))
        registry_sync(model_name=name, actor=MLFLOW)
    return "synced"


@shared_task(name="registry.sync_registry", bind=True, autoretry_for=TRANSIENT_ERRORS)
def sync_registry(self: Task) -> str:
    """Reconcile every model with MLflow on beat's timer: catches deliveries MLflow lost.

    One model at a time, each in its own transaction; a model whose webhook sync is running
    right now is left to it (that sync reads MLflow later than this one would).
    """
    with periodic_job("registry.sync_registry", self.request.id) as acquired:
        if not acquired:
            return SKIPPED
        for name in registry_model_names():
            with job_lease(name=model_lease_name(name), holder=self.request.id) as mine:
                if mine:
                    registry_sync(model_name=name, actor=SYSTEM)
    return "synced"
