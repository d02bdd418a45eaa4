"""Background jobs of monitoring: drift on beat's timer (thin tasks over ``monitoring.services``).

Experiment analysis joins here when the experiments app exists (see docs/background-work.md).
"""

from __future__ import annotations

from celery import shared_task
from celery.app.task import Task
from django.db import InterfaceError, OperationalError

from monitoring.production_facts import production_facts_publish
from monitoring.services import drift_compute
from registry.jobs import SKIPPED, periodic_job

# MLflow outages are handled per variant inside drift_compute; a database away is retried.
TRANSIENT_ERRORS = (OperationalError, InterfaceError)


@shared_task(name="monitoring.compute_drift", bind=True, autoretry_for=TRANSIENT_ERRORS)
def compute_drift(self: Task) -> str:
    """Drift of every variant that logged predictions in the last hour (``manage.py compute_drift``)."""
    with periodic_job("monitoring.compute_drift", self.request.id) as acquired:
        if not acquired:
            return SKIPPED
        drift_compute()
    return "computed"


@shared_task(name="monitoring.publish_production_facts", bind=True, autoretry_for=TRANSIENT_ERRORS)
def publish_production_facts(self: Task) -> str:
    """Endpoint, role, traffic share and drift of served versions as MLflow version tags."""
    with periodic_job("monitoring.publish_production_facts", self.request.id) as acquired:
        if not acquired:
            return SKIPPED
        production_facts_publish()
    return "published"
