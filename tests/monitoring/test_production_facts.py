"""Production facts reach MLflow: served versions carry endpoint, role, share and drift as tags."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from monitoring.models import DriftResult
from monitoring.production_facts import production_facts_publish
from registry.models import ModelVersion
from routing.governance.services import challenger_start, endpoint_create, traffic_split_set
from tests.routing.helpers import make_model

pytestmark = pytest.mark.django_db


@pytest.fixture
def served(mlflow_server, trained_models):
    """Endpoint ``facts``: champion v1 at 80 %, challenger v2 at 20 %; v3 registered, not served."""
    model = make_model(mlflow_server.client(), trained_models)
    endpoint_create(actor="system", name="facts", model_name=model.name, champion_version=1, reason="r")
    challenger_start(actor="system", endpoint_name="facts", version=2, percent=20, reason="r")
    return model


def _tags(mlflow_server, name: str, version: int) -> dict[str, str]:
    tags = mlflow_server.client().get_model_version(name, str(version)).tags
    return {k: v for k, v in tags.items() if k.startswith("controlplane.")}


def _drift(version: int, variant: str, psi: float) -> None:
    now = timezone.now()
    DriftResult.objects.create(
        endpoint="facts", variant=variant, model_name="m", model_version=version, feature="mean radius",
        feature_kind="numeric", psi=psi, n_live=900, n_reference=400, reference_kind="training",
        window_start=now - timedelta(hours=1), window_end=now, computed_at=now,
    )  # fmt: skip


def test_served_versions_get_endpoint_role_share_and_drift_tags_in_mlflow(served, mlflow_server):
    _drift(2, "v2", 0.45)

    production_facts_publish()

    champion, challenger = _tags(mlflow_server, served.name, 1), _tags(mlflow_server, served.name, 2)
    assert champion["controlplane.endpoint"] == "facts" and champion["controlplane.role"] == "champion"
    assert champion["controlplane.traffic_share"] == "0.8000"
    assert champion["controlplane.drift_status"] == "unknown"
    assert challenger["controlplane.traffic_share"] == "0.2000"
    assert challenger["controlplane.drift_status"] == "drifted"
    assert challenger["controlplane.drift_max_psi"] == "0.4500"
    assert challenger["controlplane.serving_since"].startswith(str(timezone.now().year))
    assert "controlplane.traffic_share" not in _tags(mlflow_server, served.name, 3)


def test_a_second_run_with_nothing_new_writes_nothing_and_a_change_writes_only_itself(served, mlflow_server):
    assert production_facts_publish() > 0
    assert production_facts_publish() == 0  # idempotent: the mirror knows what MLflow has

    traffic_split_set(actor="system", endpoint_name="facts", weights={"v1": 50, "v2": 50}, reason="even")
    written = production_facts_publish()

    assert written == 2  # the two shares, nothing else
    assert _tags(mlflow_server, served.name, 1)["controlplane.traffic_share"] == "0.5000"
    assert (
        ModelVersion.objects.get(registered_model__name=served.name, version=1).tags[
            "controlplane.traffic_share"
        ]
        == "0.5000"
    )


def test_a_version_that_stops_serving_drops_to_zero_share_and_keeps_its_history(served, mlflow_server):
    from routing.governance.services import challenger_retire

    production_facts_publish()
    challenger_retire(actor="system", endpoint_name="facts", variant_name="v2", reason="loses")

    production_facts_publish()

    retired = _tags(mlflow_server, served.name, 2)
    assert retired["controlplane.traffic_share"] == "0"
    assert retired["controlplane.endpoint"] == "facts"  # history stays
    assert production_facts_publish() == 0


def test_a_hung_mlflow_skips_the_run_without_marking_the_mirror(served, mlflow_server, monkeypatch):
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    with mlflow_server.frozen():
        assert production_facts_publish() == 0

    mirror = ModelVersion.objects.get(registered_model__name=served.name, version=1).tags
    assert "controlplane.traffic_share" not in mirror  # nothing marked written while MLflow hung
    assert production_facts_publish() > 0
    assert _tags(mlflow_server, served.name, 1)["controlplane.traffic_share"] == "0.8000"
