"""compute_drift end to end: references from real MLflow runs, rows in the prediction log."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone
from sklearn.datasets import load_breast_cancer

from monitoring.models import DriftReference, DriftResult, ReferenceKind
from monitoring.services import drift_compute
from registry.models import ModelVersion, RegisteredModel
from registry.services import registry_sync
from routing.models import PredictionLog

pytestmark = pytest.mark.django_db

SHIFTED = "mean radius"


def _log(endpoint: str, variant: str, name: str, version: int, rows: list[dict], at=None) -> None:
    at = at or timezone.now() - timedelta(minutes=5)
    PredictionLog.objects.bulk_create(
        PredictionLog(
            created_at=at,
            request_id=f"r{i}",
            endpoint=endpoint,
            variant=variant,
            model_name=name,
            model_version=version,
            inputs={"dataframe_records": [row]},  # a request as the writer stores it
            outputs=[i % 2],
            latency_ms=1.0,
        )
        for i, row in enumerate(rows)
    )


def _breast_cancer_rows(shift_sd: float = 0.0) -> list[dict]:
    frame = load_breast_cancer(as_frame=True).data
    frame[SHIFTED] = frame[SHIFTED] + shift_sd * frame[SHIFTED].std()
    return frame.to_dict(orient="records")


def test_shifting_one_feature_raises_only_its_psi_above_the_threshold(trained_models):
    registry_sync(model_name=trained_models.sklearn_name)
    name, version = trained_models.sklearn_name, trained_models.sklearn_version
    _log("demo", "champion", name, version, _breast_cancer_rows(shift_sd=1.0))

    results = {r.feature: r for r in drift_compute(endpoint="demo")}

    assert results[SHIFTED].psi > 0.2 and results[SHIFTED].ks_pvalue < 0.001
    others = [r for f, r in results.items() if f not in (SHIFTED, DriftResult.PREDICTION)]
    assert len(others) == 29 and max(r.psi for r in others) < 0.2, sorted((r.psi, r.feature) for r in others)[
        -3:
    ]
    assert DriftResult.PREDICTION in results
    assert {r.reference_kind for r in results.values()} == {ReferenceKind.TRAINING}
    assert results[SHIFTED].n_live == 569
    stored = DriftReference.objects.get(model_name=name, model_version=version)
    assert stored.kind == ReferenceKind.TRAINING and SHIFTED in stored.reference["features"]


def test_a_version_without_a_training_reference_is_compared_with_its_first_live_rows(db):
    rm = RegisteredModel.objects.create(name="no-reference")
    ModelVersion.objects.create(registered_model=rm, version=1, status="READY")  # no run: no artifact
    early = timezone.now() - timedelta(minutes=30)
    _log("ep", "champion", "no-reference", 1, _breast_cancer_rows()[:300], at=early)

    assert drift_compute(endpoint="ep", bootstrap_rows=400) == []  # not enough rows yet
    _log("ep", "champion", "no-reference", 1, _breast_cancer_rows()[300:], at=early)
    _log("ep", "champion", "no-reference", 1, _breast_cancer_rows(shift_sd=1.5)[:300])
    results = {r.feature: r for r in drift_compute(endpoint="ep", bootstrap_rows=400)}

    assert {r.reference_kind for r in results.values()} == {ReferenceKind.LIVE_BOOTSTRAP}
    # Rows up to the last one that built the reference are left out: only the 300 later ones count.
    assert results[SHIFTED].n_live == 300
    assert results[SHIFTED].psi > 0.2
    assert DriftReference.objects.get(model_name="no-reference").kind == ReferenceKind.LIVE_BOOTSTRAP


def test_compute_drift_command_limits_itself_to_the_window(trained_models, capsys):
    registry_sync(model_name=trained_models.sklearn_name)
    name, version = trained_models.sklearn_name, trained_models.sklearn_version
    _log("old", "champion", name, version, _breast_cancer_rows(), at=timezone.now() - timedelta(hours=3))
    _log("new", "champion", name, version, _breast_cancer_rows(shift_sd=1.0))

    call_command("compute_drift", "--window", "60m")

    assert set(DriftResult.objects.values_list("endpoint", flat=True)) == {"new"}
    assert f"new/champion v{version} {SHIFTED}: PSI" in capsys.readouterr().out


def test_compute_drift_refuses_a_window_it_cannot_read(db):
    with pytest.raises(CommandError, match="--window"):
        call_command("compute_drift", "--window", "an hour")
