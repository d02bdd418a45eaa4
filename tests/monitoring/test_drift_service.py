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
    # The live side of the histogram: one share per reference bin, summing to 1, weight moved up.
    shifted = DriftResult.objects.get(feature=SHIFTED)
    reference_shares = stored.reference["features"][SHIFTED]["shares"]
    assert len(shifted.live_shares) == len(reference_shares) and sum(shifted.live_shares) == pytest.approx(1)
    assert shifted.live_shares[-1] > 2 * reference_shares[-1]
    prediction = DriftResult.objects.get(feature=DriftResult.PREDICTION).live_shares
    assert sum(prediction.values() if isinstance(prediction, dict) else prediction) == pytest.approx(1)


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


@pytest.mark.django_db(transaction=True)
def test_drift_reads_mlflow_and_computes_outside_any_transaction_then_writes_briefly(
    trained_models, monkeypatch
):
    """On SQLite an open transaction holds the one write lock: computing inside one locked everyone out."""
    from django.db import connection

    from monitoring import services
    from registry import mlflow_client

    seen: dict[str, list[bool]] = {"mlflow": [], "compute": [], "write": []}

    def spy(kind, real):
        def call(*args, **kwargs):
            seen[kind].append(connection.in_atomic_block)
            return real(*args, **kwargs)

        return call

    monkeypatch.setattr(mlflow_client, "run_artifact_json", spy("mlflow", mlflow_client.run_artifact_json))
    monkeypatch.setattr(
        services.drift, "compare_to_reference", spy("compute", services.drift.compare_to_reference)
    )
    monkeypatch.setattr(DriftResult.objects, "bulk_create", spy("write", DriftResult.objects.bulk_create))
    registry_sync(model_name=trained_models.sklearn_name)
    _log(
        "lock", "champion", trained_models.sklearn_name, trained_models.sklearn_version, _breast_cancer_rows()
    )

    assert drift_compute(endpoint="lock")
    assert seen["mlflow"] == [False] and seen["compute"] == [False]
    assert seen["write"] == [True]  # the results: one short transaction


@pytest.mark.django_db(transaction=True)
def test_registry_sync_calls_mlflow_outside_any_transaction(trained_models, monkeypatch):
    from django.db import connection

    from registry import mlflow_client

    calls: list[tuple[str, bool]] = []
    for name in ("registered_model_get", "model_versions_list", "version_details", "registered_model_names"):
        real = getattr(mlflow_client, name)

        def spy(*args, _name=name, _real=real, **kwargs):
            calls.append((_name, connection.in_atomic_block))
            return _real(*args, **kwargs)

        monkeypatch.setattr(mlflow_client, name, spy)
    registry_sync(model_name=trained_models.sklearn_name)
    registry_sync()
    assert calls and not [c for c in calls if c[1]], calls


def test_each_variant_is_computed_once_however_many_log_rows_it_has(trained_models, monkeypatch):
    """The log's ordering (created_at) joined the DISTINCT: one computation per row, minutes at ~30k rows."""
    from monitoring import services

    calls = []
    real = services.drift.compare_to_reference
    monkeypatch.setattr(
        services.drift, "compare_to_reference", lambda *a, **k: calls.append(1) or real(*a, **k)
    )
    registry_sync(model_name=trained_models.sklearn_name)
    rows = _breast_cancer_rows()[:40]
    for i, row in enumerate(rows):  # each row at its own time
        _log("once", "champion", trained_models.sklearn_name, trained_models.sklearn_version, [row],
             at=timezone.now() - timedelta(minutes=50 - i))  # fmt: skip
    assert drift_compute(endpoint="once")
    assert len(calls) == 1
