from __future__ import annotations

import time

import pytest
from django.core.management import CommandError, call_command

from registry import mlflow_client
from registry.mlflow_client import MlflowUnavailable
from registry.models import AuditEvent, ModelVersion, RegisteredModel
from registry.services import registry_sync
from tests.conftest import clone_version

pytestmark = pytest.mark.django_db


def test_it_mirrors_versions_with_signature_metrics_params_and_flavors(trained_models):
    registry_sync(model_name=trained_models.sklearn_name)

    version = ModelVersion.objects.get(
        registered_model__name=trained_models.sklearn_name, version=trained_models.sklearn_version
    )
    assert version.status == "READY"
    assert len(version.signature_inputs) == 30
    assert {"name": "mean radius", "type": "double", "required": True} in version.signature_inputs
    assert version.signature_outputs
    assert version.metrics["val_auc"] > 0.9
    assert version.params["model"] == "logistic_regression"
    assert "sklearn" in version.flavors and "python_function" in version.flavors
    assert version.run_id and version.model_id.startswith("m-")
    assert version.mlflow_created_at is not None


def test_it_mirrors_the_xgboost_flavor(trained_models):
    registry_sync(model_name=trained_models.xgboost_name)
    version = ModelVersion.objects.get(registered_model__name=trained_models.xgboost_name)
    assert "xgboost" in version.flavors
    assert version.params["model"] == "xgboost"


def test_a_second_sync_changes_nothing(trained_models):
    registry_sync(model_name=trained_models.shared_name)
    events = AuditEvent.objects.count()
    report = registry_sync(model_name=trained_models.shared_name)
    assert not report.changed
    assert AuditEvent.objects.count() == events


def test_a_full_sync_mirrors_every_registered_model(trained_models):
    report = registry_sync()
    names = set(RegisteredModel.objects.values_list("name", flat=True))
    assert {trained_models.sklearn_name, trained_models.xgboost_name, trained_models.shared_name} <= names
    assert report.models_seen >= 3


def test_an_alias_moved_in_mlflow_is_recorded_as_an_external_change(trained_models, mlflow_server):
    name = trained_models.shared_name
    client = mlflow_server.client()
    client.set_registered_model_alias(name, "champion", "1")
    registry_sync(model_name=name)
    client.set_registered_model_alias(name, "champion", "2")

    report = registry_sync(model_name=name)

    assert report.alias_changes == [f"{name}@champion: 1 -> 2"]
    model = RegisteredModel.objects.get(name=name)
    assert model.aliases["champion"] == 2
    assert model.versions.get(version=2).aliases == ["champion"]
    assert model.versions.get(version=1).aliases == []
    event = AuditEvent.objects.get(action="registry.alias_changed_externally")
    assert event.actor == "mlflow" and event.actor_kind == "mlflow"
    assert event.before == {"alias": "champion", "version": 1}
    assert event.after == {"alias": "champion", "version": 2}


def test_a_version_deleted_in_mlflow_is_marked_not_dropped(trained_models, mlflow_server):
    client = mlflow_server.client()
    name = "test-delete-me"
    client.create_registered_model(name)
    src = client.get_model_version(trained_models.sklearn_name, str(trained_models.sklearn_version))
    clone_version(client, name, src)
    clone_version(client, name, src)
    registry_sync(model_name=name)
    client.delete_model_version(name, "1")

    report = registry_sync(model_name=name)

    v1 = ModelVersion.objects.get(registered_model__name=name, version=1)
    assert v1.deleted_in_mlflow
    assert report.deleted == [f"{name} v1"]
    assert AuditEvent.objects.filter(action="registry.version_deleted_in_mlflow").count() == 1
    client.delete_registered_model(name)
    registry_sync(model_name=name)
    model = RegisteredModel.objects.get(name=name)
    assert model.deleted_in_mlflow
    assert model.versions.filter(deleted_in_mlflow=False).count() == 0


def test_a_version_without_an_mlflow_model_keeps_the_reason(trained_models, mlflow_server):
    client = mlflow_server.client()
    name = "test-no-mlmodel"
    run_id = client.get_model_version(trained_models.sklearn_name, "1").run_id
    client.create_registered_model(name)
    client.create_model_version(name, f"runs:/{run_id}/no-such-model", run_id=run_id)
    registry_sync(model_name=name)
    version = ModelVersion.objects.get(registered_model__name=name)
    assert version.signature_inputs is None
    assert "no readable MLmodel" in version.details_error


def test_sync_of_an_unreachable_server_fails_naming_it_and_changes_nothing(trained_models, settings):
    registry_sync(model_name=trained_models.sklearn_name)
    before = list(ModelVersion.objects.values_list("pk", "status", "aliases"))
    settings.MLFLOW_TRACKING_URI = "http://127.0.0.1:9"  # discard port: nothing listens

    with pytest.raises(CommandError, match=r"http://127\.0\.0\.1:9"):
        call_command("sync_registry")

    assert list(ModelVersion.objects.values_list("pk", "status", "aliases")) == before


def test_mlflow_stopping_mid_sync_leaves_the_mirror_as_it_was(mlflow_server_factory, use_mlflow):
    server = mlflow_server_factory()
    use_mlflow(server)
    client = server.client()
    for name in ("outage-a", "outage-b"):
        client.create_registered_model(name)
        _version_without_model(client, name)
    registry_sync()
    snapshot = (
        list(RegisteredModel.objects.values_list("name", "aliases")),
        list(ModelVersion.objects.values_list("pk", "status", "aliases", "deleted_in_mlflow")),
        AuditEvent.objects.count(),
    )
    for name in ("outage-a", "outage-b"):
        _version_without_model(client, name)
    client.set_registered_model_alias("outage-b", "champion", "1")

    def stop_server_after_first_read(model: str, done: int, total: int) -> None:
        server.stop()

    with pytest.raises(MlflowUnavailable, match=server.url):
        registry_sync(progress=stop_server_after_first_read)

    assert (
        list(RegisteredModel.objects.values_list("name", "aliases")),
        list(ModelVersion.objects.values_list("pk", "status", "aliases", "deleted_in_mlflow")),
        AuditEvent.objects.count(),
    ) == snapshot


def test_garbage_from_the_server_is_reported_as_unavailable(settings, mlflow_server):
    # The tracking server's UI answers HTML, not the REST API's JSON, under this prefix.
    settings.MLFLOW_TRACKING_URI = f"{mlflow_server.url}/static-files"
    with pytest.raises(MlflowUnavailable, match="static-files"):
        registry_sync()


@pytest.mark.slow
def test_it_syncs_more_than_one_page_of_versions(mlflow_server, monkeypatch):
    # Pages of 20 (1,000 in production): the same page-token loop, 25 versions to register
    # instead of 1,005 (that took 25 s of every CI pass).
    monkeypatch.setattr(mlflow_client, "PAGE_SIZE", 20)
    client = mlflow_server.client()
    count = mlflow_client.PAGE_SIZE * 2 + 5
    _bulk_register("big-model", count, client)

    started = time.monotonic()
    report = registry_sync(model_name="big-model")
    took = time.monotonic() - started

    assert report.versions_seen == count
    assert ModelVersion.objects.filter(registered_model__name="big-model").count() == count
    assert ModelVersion.objects.filter(registered_model__name="big-model", version=count).exists()
    print(f"synced {count} versions in {took:.1f}s")


def _version_without_model(client, name: str, run_id: str | None = None) -> None:
    """A version whose run has no model artifacts: cheap to make, and a real registry row."""
    run_id = run_id or client.create_run("0").info.run_id
    client.create_model_version(name, f"runs:/{run_id}/model", run_id=run_id)


def _bulk_register(name: str, count: int, client) -> None:
    """Register many versions quickly: a thread pool over the REST API."""
    from concurrent.futures import ThreadPoolExecutor

    client.create_registered_model(name)
    run_id = client.create_run("0").info.run_id
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda _: _version_without_model(client, name, run_id), range(count)))
