"""A worker killed in the middle of a task: nothing half-applied, and another worker finishes it.

The task is a sync of a model with many versions, so the worker spends a few seconds reading
MLflow (version details) before it writes anything; the test waits until the worker holds the
model's lease (it is inside its work), SIGKILLs the worker's whole process group (main process
and pool: nothing is acknowledged), checks the mirror, and starts another worker, which gets the
message back from Redis once its visibility timeout has passed.
"""

from __future__ import annotations

import time
import uuid

import pytest

from registry.models import AuditEvent, JobLock, ModelVersion
from registry.tasks import model_lease_name, sync_model
from tests.celery_workers import wait_until
from tests.conftest import clone_version

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

VERSIONS = 40
# Short, so the message of the killed worker comes back within seconds.
QUICK_REDELIVERY = {"CELERY_VISIBILITY_TIMEOUT_SECONDS": "10", "CELERY_TASK_TIME_LIMIT_SECONDS": "9"}


def _model_with_many_versions(mlflow_server, trained_models) -> str:
    client = mlflow_server.client()
    name = f"many-{uuid.uuid4().hex[:6]}"
    src = client.get_model_version(trained_models.sklearn_name, str(trained_models.sklearn_version))
    client.create_registered_model(name)
    for _ in range(VERSIONS):
        clone_version(client, name, src)
    return name


def _lease_holder(name: str) -> str:
    return JobLock.objects.filter(name=model_lease_name(name)).values_list("holder", flat=True).first() or ""


def test_a_worker_killed_mid_sync_leaves_the_mirror_whole_and_another_worker_completes_it(
    celery_rig, mlflow_server, trained_models
):
    name = _model_with_many_versions(mlflow_server, trained_models)
    queue = f"kill-test-{uuid.uuid4().hex[:8]}"
    doomed = celery_rig.start_worker("doomed", queues=[queue], **QUICK_REDELIVERY).wait_ready()
    sent = sync_model.apply_async((name,), queue=queue)
    taken_at = time.monotonic()

    holder = wait_until(
        lambda: _lease_holder(name), timeout=30, what=f"the sync to start\n{celery_rig.logs()}"
    )
    doomed.kill()

    assert holder == sent.id
    assert _lease_holder(name) == sent.id, "the task finished before the kill: make it slower"
    assert not ModelVersion.objects.filter(registered_model__name=name).exists()

    rescuer = celery_rig.start_worker("rescuer", queues=[queue], **QUICK_REDELIVERY)
    try:
        wait_until(
            lambda: ModelVersion.objects.filter(registered_model__name=name).count() == VERSIONS,
            timeout=90,
            what=f"the mirror to hold {VERSIONS} versions\n{celery_rig.logs()}",
        )
        wait_until(lambda: _lease_holder(name) == "", timeout=30, what="the lease to be released")
    finally:
        rescuer.stop()
    assert time.monotonic() - taken_at >= 10, "redelivered before the visibility timeout"
    mirrored = AuditEvent.objects.filter(action="registry.versions_mirrored", object_repr=name)
    assert [e.after["count"] for e in mirrored] == [VERSIONS]
