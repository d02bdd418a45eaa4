"""Background jobs of experiments on beat's timer: thin tasks over ``experiments.quality`` and
``experiments.services``, each under a periodic-job lease (one run per half period)."""

from __future__ import annotations

from celery import shared_task
from celery.app.task import Task
from django.db import InterfaceError, OperationalError

from experiments.quality import quality_compute, quality_tags_publish
from experiments.services import experiments_analyze_running
from registry.jobs import SKIPPED, periodic_job

TRANSIENT_ERRORS = (OperationalError, InterfaceError)


@shared_task(name="experiments.compute_quality", bind=True, autoretry_for=TRANSIENT_ERRORS)
def compute_quality(self: Task) -> str:
    """Per-variant quality from feedback (``manage.py compute_quality``)."""
    with periodic_job("experiments.compute_quality", self.request.id) as acquired:
        if not acquired:
            return SKIPPED
        quality_compute()  # one transaction, then the MLflow calls outside it
        quality_tags_publish()
    return "computed"


@shared_task(name="experiments.analyze_experiments", bind=True, autoretry_for=TRANSIENT_ERRORS)
def analyze_experiments(self: Task) -> str:
    """One look at every running experiment (``manage.py analyze_experiments``)."""
    with periodic_job("experiments.analyze_experiments", self.request.id) as acquired:
        if not acquired:
            return SKIPPED
        experiments_analyze_running()
    return "analyzed"
