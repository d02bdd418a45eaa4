"""Live quality reaches MLflow: each served version carries its per-variant quality as tags,
written only when it changed (real MLflow server)."""

from __future__ import annotations

import pytest
from django.utils import timezone

from experiments.models import VariantQuality
from experiments.quality import quality_tags_publish
from routing.governance.services import challenger_start, endpoint_create
from tests.routing.helpers import make_model

pytestmark = pytest.mark.django_db


@pytest.fixture
def served(mlflow_server, trained_models):
    """Endpoint ``qual``: champion v1 (variant ``v1``), challenger v2 (variant ``v2``)."""
    model = make_model(mlflow_server.client(), trained_models)
    endpoint_create(actor="system", name="qual", model_name=model.name, champion_version=1, reason="r")
    challenger_start(actor="system", endpoint_name="qual", version=2, percent=20, reason="r")
    return model


def _quality(variant: str, version: int, metric: str, value: float | None) -> None:
    VariantQuality.objects.update_or_create(
        endpoint="qual",
        variant=variant,
        model_version=version,
        metric=metric,
        defaults={"value": value, "count": 100, "computed_at": timezone.now()},
    )


def _tags(mlflow_server, name: str, version: int) -> dict[str, str]:
    tags = mlflow_server.client().get_model_version(name, str(version)).tags
    return {k: v for k, v in tags.items() if k.startswith("controlplane.quality.")}


def test_served_versions_carry_their_live_quality_in_mlflow_and_a_rerun_writes_nothing(served, mlflow_server):
    _quality("v1", 1, "accuracy", 0.91234)
    _quality("v2", 2, "accuracy", 0.87)
    _quality("v2", 2, "outcome:revenue", 3.5)
    _quality("v2", 2, "auc", None)  # no value (no probabilities): no tag
    _quality("gone", 3, "accuracy", 0.5)  # a variant no longer served: no tag

    assert quality_tags_publish() == 3

    assert _tags(mlflow_server, served.name, 1) == {"controlplane.quality.accuracy": "0.9123"}
    assert _tags(mlflow_server, served.name, 2) == {
        "controlplane.quality.accuracy": "0.8700",
        "controlplane.quality.outcome.revenue": "3.5000",
    }
    assert _tags(mlflow_server, served.name, 3) == {}
    assert quality_tags_publish() == 0  # nothing changed: no MLflow call
    _quality("v2", 2, "accuracy", 0.9)
    assert quality_tags_publish() == 1
    assert _tags(mlflow_server, served.name, 2)["controlplane.quality.accuracy"] == "0.9000"
