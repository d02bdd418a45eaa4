"""Background jobs of routing, thin tasks over its services, sent by beat (docs/background-work.md).

The alias outbox (``apply_alias_pushes``, sent after each governance commit, and beat's
``reconcile_aliases``) and prediction-log retention, which the chart used to run as a CronJob.
"""

from __future__ import annotations

import random
from datetime import timedelta

from celery import shared_task
from celery.app.task import Task
from django.conf import settings
from django.db import InterfaceError, OperationalError

from registry.jobs import DEFERRED, SKIPPED, periodic_job
from registry.mlflow_client import MlflowUnavailable
from routing.governance.aliases import APPLY_TASK
from routing.governance.outbox import alias_pushes_apply, alias_pushes_open_models
from routing.serving.batch import SCORE_TASK, batch_job_score, batch_jobs_prune, batch_jobs_requeue
from routing.serving.prediction_log import prune

TRANSIENT_ERRORS = (OperationalError, InterfaceError)


@shared_task(name="routing.prune_predictions", bind=True, autoretry_for=TRANSIENT_ERRORS)
def prune_predictions(self: Task) -> str:
    """Delete prediction-log rows older than ``PREDICTION_LOG_RETENTION_DAYS``, in short batches."""
    with periodic_job("routing.prune_predictions", self.request.id) as acquired:
        if not acquired:
            return SKIPPED
        deleted = prune(settings.PREDICTION_LOG_RETENTION_DAYS)
    return f"deleted {deleted}"


@shared_task(name=APPLY_TASK, bind=True, autoretry_for=(MlflowUnavailable, *TRANSIENT_ERRORS))
def apply_alias_pushes(self: Task, model_name: str) -> str:
    """Push a model's pending alias/tag changes to MLflow (sent after a governance commit)."""
    applied = alias_pushes_apply(model_name=model_name, holder=self.request.id)
    if applied is None:
        # Another worker holds the model's lease: go after it, so the newest row is pushed last.
        apply_alias_pushes.apply_async((model_name,), countdown=1 + random.random() * 2)
        return DEFERRED
    return f"applied {applied}"


@shared_task(name="routing.reconcile_aliases", bind=True, autoretry_for=TRANSIENT_ERRORS)
def reconcile_aliases(self: Task) -> str:
    """Beat's safety net: apply every pending or failed push (lost message, MLflow was down)."""
    with periodic_job("routing.reconcile_aliases", self.request.id) as acquired:
        if not acquired:
            return SKIPPED
        left = 0
        for name in alias_pushes_open_models():
            try:
                alias_pushes_apply(model_name=name, holder=self.request.id)
            except MlflowUnavailable:
                left += 1  # recorded on the rows; tried again next period
    return f"open models left {left}"


@shared_task(name=SCORE_TASK, bind=True, autoretry_for=TRANSIENT_ERRORS)
def score_batch_job(self: Task, job_id: str) -> str:
    """Score one batch job (sent when it was submitted); a second delivery finds it taken or done."""
    return batch_job_score(job_id=job_id, holder=self.request.id)


@shared_task(name="routing.prune_batch_jobs", bind=True, autoretry_for=TRANSIENT_ERRORS)
def prune_batch_jobs(self: Task) -> str:
    """Delete jobs finished more than ``BATCH_JOB_RETENTION_DAYS`` ago; send lost jobs again."""
    with periodic_job("routing.prune_batch_jobs", self.request.id) as acquired:
        if not acquired:
            return SKIPPED
        deleted = batch_jobs_prune(older_than_days=settings.BATCH_JOB_RETENTION_DAYS)
        requeued = batch_jobs_requeue(older_than=timedelta(minutes=30))
    return f"deleted {deleted}, requeued {requeued}"
