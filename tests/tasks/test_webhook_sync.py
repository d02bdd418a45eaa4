"""The MLflow webhook on real workers: 202 at once, the mirror updated by a worker, bursts
coalesced, and a delivery during a running sync never lost."""

from __future__ import annotations

import json
import time
import uuid
from datetime import timedelta

import pytest
from django.conf import settings

from registry.jobs import job_lease_acquire, job_lease_release
from registry.models import AuditEvent, ModelVersion, RegisteredModel
from registry.tasks import model_lease_name
from registry.webhooks import signature_for
from tests.celery_workers import task_runs, wait_until
from tests.conftest import clone_version

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]
URL = "/hooks/mlflow"


def _deliver(client, name: str):
    raw = json.dumps({"entity": "model_version", "action": "created", "data": {"name": name}}).encode()
    delivery, timestamp = str(uuid.uuid4()), str(int(time.time()))
    return client.post(
        URL,
        raw,
        content_type="application/json",
        HTTP_X_MLFLOW_SIGNATURE=signature_for(settings.MLFLOW_WEBHOOK_SECRET, delivery, timestamp, raw),
        HTTP_X_MLFLOW_TIMESTAMP=timestamp,
        HTTP_X_MLFLOW_DELIVERY_ID=delivery,
    )


def _new_model(mlflow_server, trained_models, prefix: str) -> tuple[object, str, object]:
    client = mlflow_server.client()
    name = f"{prefix}-{uuid.uuid4().hex[:6]}"
    src = client.get_model_version(trained_models.sklearn_name, str(trained_models.sklearn_version))
    client.create_registered_model(name)
    clone_version(client, name, src)
    return client, name, src


def _sync_model_runs(rig) -> dict[str, float]:
    return {o: n for (t, o), n in task_runs(rig.metrics_dir).items() if t == "registry.sync_model"}


def test_a_real_mlflow_delivery_is_answered_202_and_a_worker_updates_the_mirror(
    live_server, mlflow_server, trained_models, celery_workers
):
    client = mlflow_server.client()
    hook = client.create_webhook(
        name=f"test-{uuid.uuid4().hex[:8]}",
        url=f"{live_server.url}{URL}",
        events=["model_version.created", "model_version_alias.created", "registered_model.created"],
        secret=settings.MLFLOW_WEBHOOK_SECRET,
    )
    try:
        time.sleep(1.5)  # the server caches webhook subscriptions (MLFLOW_WEBHOOK_CACHE_TTL=1 here)
        client, name, _ = _new_model(mlflow_server, trained_models, "hooked")
        wait_until(
            lambda: ModelVersion.objects.filter(registered_model__name=name).exists(),
            timeout=60,
            what=f"the mirror to show {name}\n{celery_workers.logs()}",
        )
        version = ModelVersion.objects.get(registered_model__name=name)
        assert len(version.signature_inputs) == 30
        assert version.metrics["val_auc"] > 0.9

        client.set_registered_model_alias(name, "champion", "1")
        wait_until(lambda: RegisteredModel.objects.get(name=name).aliases == {"champion": 1}, timeout=60)
        assert AuditEvent.objects.filter(
            action="registry.alias_changed_externally", object_repr=f"{name}@champion"
        ).exists()
    finally:
        client.delete_webhook(hook.webhook_id)
        # Until its subscription cache expires the server still delivers to this hook, and the
        # next test's model would be synced by that stray delivery before the test's own.
        time.sleep(1.5)


def test_the_webhook_answers_202_without_waiting_for_the_sync(
    client, mlflow_server, trained_models, celery_workers
):
    _, name, _ = _new_model(mlflow_server, trained_models, "quick")
    started = time.monotonic()
    response = _deliver(client, name)
    assert response.status_code == 202, response.content
    assert response.json() == {"event": "model_version.created", "model": name, "queued": True}
    assert time.monotonic() - started < 1.0
    wait_until(lambda: ModelVersion.objects.filter(registered_model__name=name).exists(), timeout=60)


def test_a_burst_of_deliveries_for_one_model_sends_one_sync(
    client, mlflow_server, trained_models, celery_workers
):
    _, name, _ = _new_model(mlflow_server, trained_models, "burst")
    before = _sync_model_runs(celery_workers)
    # Another sync of this model holds its lease, so the queued one waits and stays "queued".
    lease = model_lease_name(name)
    assert job_lease_acquire(name=lease, holder="someone-else", ttl=timedelta(minutes=5))
    answers = [_deliver(client, name).json()["queued"] for _ in range(5)]
    assert answers == [True, False, False, False, False]
    time.sleep(2)
    assert not ModelVersion.objects.filter(registered_model__name=name).exists()
    job_lease_release(name=lease, holder="someone-else", succeeded=True)
    wait_until(lambda: ModelVersion.objects.filter(registered_model__name=name).exists(), timeout=60)
    after = wait_until(
        lambda: (r := _sync_model_runs(celery_workers)).get("success", 0) > before.get("success", 0) and r
    )
    assert after.get("success", 0) - before.get("success", 0) == 1
    assert after.get("deferred", 0) > before.get("deferred", 0)


def test_a_delivery_during_a_running_sync_causes_a_later_sync(
    client, mlflow_server, trained_models, celery_workers
):
    mlflow, name, src = _new_model(mlflow_server, trained_models, "during")
    assert _deliver(client, name).json()["queued"] is True
    wait_until(lambda: ModelVersion.objects.filter(registered_model__name=name).count() == 1, timeout=60)
    # A sync is running (it read MLflow already) when version 2 is registered and announced.
    lease = model_lease_name(name)
    assert job_lease_acquire(name=lease, holder="running-sync", ttl=timedelta(minutes=5))
    clone_version(mlflow, name, src)
    assert _deliver(client, name).json()["queued"] is True
    time.sleep(2)
    assert ModelVersion.objects.filter(registered_model__name=name).count() == 1
    job_lease_release(name=lease, holder="running-sync", succeeded=True)
    wait_until(
        lambda: ModelVersion.objects.filter(registered_model__name=name).count() == 2,
        timeout=60,
        what=f"version 2 mirrored after the running sync\n{celery_workers.logs()}",
    )
