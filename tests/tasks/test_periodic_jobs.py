"""Periodic jobs on real workers: two workers given the same job do the work once."""

from __future__ import annotations

import pytest

from monitoring.tasks import compute_drift, publish_production_facts
from registry.models import AuditEvent, JobLock, RegisteredModel
from registry.tasks import sync_registry
from tests.celery_workers import task_runs, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def _runs(rig, task: str) -> dict[str, float]:
    return {outcome: n for (name, outcome), n in task_runs(rig.metrics_dir).items() if name == task}


def _delta(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {k: after.get(k, 0) - before.get(k, 0) for k in after if after.get(k, 0) != before.get(k, 0)}


def test_two_workers_given_the_same_registry_reconcile_mirror_each_model_once(celery_workers, trained_models):
    before = _runs(celery_workers, "registry.sync_registry")
    # What two beats would do: the same periodic job sent twice, to two idle workers.
    sync_registry.delay()
    sync_registry.delay()
    wait_until(
        lambda: sum(_delta(before, _runs(celery_workers, "registry.sync_registry")).values()) >= 2,
        timeout=90,
        what=f"two runs of sync_registry\n{celery_workers.logs()}",
    )
    assert _delta(before, _runs(celery_workers, "registry.sync_registry")) == {"success": 1, "skipped": 1}
    names = {trained_models.sklearn_name, trained_models.xgboost_name, trained_models.shared_name}
    assert names <= set(RegisteredModel.objects.values_list("name", flat=True))
    mirrored = list(
        AuditEvent.objects.filter(action="registry.model_mirrored").values_list("object_repr", flat=True)
    )
    assert sorted(mirrored) == sorted(set(mirrored)), "a model was mirrored twice"
    lease = JobLock.objects.get(name="registry.sync_registry")
    assert lease.holder == "" and lease.last_succeeded_at is not None


def test_two_workers_given_the_same_drift_run_compute_it_once(celery_workers):
    before = _runs(celery_workers, "monitoring.compute_drift")
    compute_drift.delay()
    compute_drift.delay()
    wait_until(
        lambda: sum(_delta(before, _runs(celery_workers, "monitoring.compute_drift")).values()) >= 2,
        timeout=60,
        what=f"two runs of compute_drift\n{celery_workers.logs()}",
    )
    assert _delta(before, _runs(celery_workers, "monitoring.compute_drift")) == {"success": 1, "skipped": 1}


def test_two_workers_given_the_same_production_facts_run_publish_once(celery_workers):
    task = "monitoring.publish_production_facts"
    before = _runs(celery_workers, task)
    publish_production_facts.delay()
    publish_production_facts.delay()
    wait_until(
        lambda: sum(_delta(before, _runs(celery_workers, task)).values()) >= 2,
        timeout=60,
        what=f"two runs of publish_production_facts\n{celery_workers.logs()}",
    )
    assert _delta(before, _runs(celery_workers, task)) == {"success": 1, "skipped": 1}


def test_prediction_log_retention_runs_once_on_two_workers_and_deletes_only_old_rows(
    celery_workers, settings
):
    import datetime as dt

    from django.utils import timezone

    from routing.models import PredictionLog
    from routing.tasks import prune_predictions

    def row(days_old: float, request_id: str) -> PredictionLog:
        return PredictionLog.objects.create(
            created_at=timezone.now() - dt.timedelta(days=days_old),
            request_id=request_id,
            endpoint="e",
            variant="v",
            model_name="m",
            model_version=1,
            inputs={"instances": [[1.0]]},
            outputs=[0],
            latency_ms=0.5,
        )

    for i in range(3):
        row(45, f"old-{i}")
    row(1, "recent")
    before = _runs(celery_workers, "routing.prune_predictions")
    prune_predictions.delay()
    prune_predictions.delay()
    wait_until(
        lambda: sum(_delta(before, _runs(celery_workers, "routing.prune_predictions")).values()) >= 2,
        timeout=60,
        what=f"two runs of prune_predictions\n{celery_workers.logs()}",
    )
    assert _delta(before, _runs(celery_workers, "routing.prune_predictions")) == {"success": 1, "skipped": 1}
    assert list(PredictionLog.objects.values_list("request_id", flat=True)) == ["recent"]
