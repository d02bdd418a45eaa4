"""Drift guardrails: ``prediction_psi`` and ``feature_psi_max`` compare the challenger's latest PSI
(monitoring's DriftResult, read through monitoring.selectors) with the champion's, within a
tolerance and under an optional absolute bound; "not yet" while no drift has been computed.
DriftResult rows are planted; the drift computation has its own tests in tests/monitoring."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from experiments.models import Experiment
from experiments.services import experiment_analyze, experiment_create, experiment_start
from monitoring.models import DriftResult
from monitoring.selectors import latest_psi
from routing.governance.errors import GovernanceError
from tests.experiments.test_experiments import TWO_ARMS, plant
from tests.routing.helpers import role_user

pytestmark = pytest.mark.django_db


def drift(variant: str, version: int, psis: dict[str, float], *, ago: timedelta = timedelta()) -> None:
    """One drift computation of ``variant``: feature -> PSI (``DriftResult.PREDICTION`` for the output)."""
    at = timezone.now() - ago
    DriftResult.objects.bulk_create(
        DriftResult(
            endpoint="ab",
            variant=variant,
            model_name="m",
            model_version=version,
            feature=feature,
            feature_kind="numeric",
            psi=psi,
            n_live=500,
            n_reference=1000,
            reference_kind="training",
            window_start=at - timedelta(hours=1),
            window_end=at,
            computed_at=at,
        )
        for feature, psi in psis.items()
    )


def _create(guardrails):
    return experiment_create(
        actor="system",
        endpoint_name="ab",
        name="psi",
        primary_metric="accuracy",
        minimum_effect=0.05,
        baseline_mean=0.9,
        guardrails=guardrails,
        reason="drift must not get worse",
    )


def _look(experiment: Experiment) -> tuple[dict[str, dict], dict]:
    """The challenger's guardrail results of a fresh look (by metric) and its verdict."""
    experiment_start(actor="system", experiment_id=experiment.pk, reason="go")
    plant("ab", "champ", 1, 200, 0.9, seed=1)
    plant("ab", "chall", 2, 200, 0.9, seed=2)
    look = experiment_analyze(experiment_id=experiment.pk)
    (comparison,) = look.snapshot["comparisons"]
    return {g["metric"]: g for g in comparison["guardrails"]}, comparison["verdict"]


P = DriftResult.PREDICTION


@pytest.fixture
def endpoint(serving):
    serving.endpoint("ab", TWO_ARMS)  # no weight changes here: the shared test model will do
    return "ab"


def test_the_selector_gives_a_variants_latest_prediction_psi_and_its_worst_feature(endpoint):
    assert latest_psi("ab", "chall") is None
    drift("chall", 2, {P: 0.9, "x1": 0.9}, ago=timedelta(hours=2))  # an older computation
    drift("chall", 2, {P: 0.12, "x1": 0.30, "x2": 0.05})
    drift("chall", 1, {P: 0.7, "x1": 0.7}, ago=timedelta(hours=1))  # a version it no longer serves
    assert latest_psi("ab", "chall", model_version=2) == {"prediction_psi": 0.12, "feature_psi_max": 0.30}
    assert latest_psi("ab", "champ") is None


def test_psi_guardrails_are_not_yet_while_no_drift_is_computed(endpoint):
    experiment = _create(
        [{"metric": "prediction_psi", "tolerance": 0.1}, {"metric": "feature_psi_max", "tolerance": 0.1}]
    )
    results, verdict = _look(experiment)
    for metric in ("prediction_psi", "feature_psi_max"):
        assert results[metric]["status"] == "not_yet" and results[metric]["passed"]
        assert "not yet" in results[metric]["sentence"]
    assert verdict["guardrails_failed"] == []


def test_a_challenger_drifting_more_than_the_champion_by_the_tolerance_fails(endpoint):
    drift("champ", 1, {P: 0.05, "x1": 0.04, "x2": 0.02})
    drift("chall", 2, {P: 0.30, "x1": 0.10, "x2": 0.12})
    experiment = _create(
        [{"metric": "prediction_psi", "tolerance": 0.1}, {"metric": "feature_psi_max", "tolerance": 0.1}]
    )
    results, verdict = _look(experiment)
    assert results["prediction_psi"]["status"] == "failed"
    assert results["prediction_psi"]["champion"] == 0.05 and results["prediction_psi"]["challenger"] == 0.30
    assert results["feature_psi_max"]["status"] == "passed"  # 0.12 vs 0.04: within 0.1
    assert verdict["guardrails_failed"] == ["prediction_psi"]


def test_an_absolute_bound_fails_a_challenger_even_within_the_tolerance(endpoint):
    drift("champ", 1, {P: 0.20, "x1": 0.20})
    drift("chall", 2, {P: 0.26, "x1": 0.21})
    experiment = _create(
        [
            {"metric": "prediction_psi", "tolerance": 0.1, "max": 0.25},
            {"metric": "feature_psi_max", "tolerance": 0.1, "max": 0.25},
        ]
    )
    assert experiment.guardrails[0] == {
        "metric": "prediction_psi",
        "tolerance": 0.1,
        "relative": False,
        "max": 0.25,
    }
    results, verdict = _look(experiment)
    assert results["prediction_psi"]["status"] == "failed" and "0.25" in results["prediction_psi"]["sentence"]
    assert results["feature_psi_max"]["status"] == "passed"
    assert verdict["guardrails_failed"] == ["prediction_psi"]


def test_unknown_guardrails_and_bad_bounds_are_refused_at_creation_with_a_reason(endpoint):
    for guardrail, word in [
        ({"metric": "psi", "tolerance": 0.1}, "prediction_psi"),
        ({"metric": "error_rate", "tolerance": 0.1}, "feature_psi_max"),
        ({"metric": "prediction_psi", "tolerance": 0.1, "max": -1}, "max"),
        ({"metric": "prediction_psi", "tolerance": 0.1, "max": "high"}, "max"),
    ]:
        with pytest.raises(GovernanceError) as refused:
            _create([guardrail])
        assert refused.value.status == 400 and word in refused.value.message, refused.value.message
    assert not Experiment.objects.exists()
    client = Client()
    client.force_login(role_user("dana", "data scientist"))
    design = {"endpoint_name": "ab", "name": "api", "primary_metric": "accuracy", "minimum_effect": 0.05,
              "baseline_mean": 0.9, "reason": "r", "guardrails": [{"metric": "psi", "tolerance": 0.1}]}  # fmt: skip
    bad = client.post("/api/v1/experiments/", design, content_type="application/json")
    assert bad.status_code == 400 and "prediction_psi" in bad.json()["error"]["message"]
    design["guardrails"] = [{"metric": "prediction_psi", "tolerance": 0.1, "max": 0.25}]
    created = client.post("/api/v1/experiments/", design, content_type="application/json")
    assert created.status_code == 201, created.content
    assert created.json()["guardrails"] == [
        {"metric": "prediction_psi", "tolerance": 0.1, "relative": False, "max": 0.25}
    ]


def test_the_page_and_the_api_show_each_guardrails_result(endpoint):
    drift("champ", 1, {P: 0.05, "x1": 0.04})
    drift("chall", 2, {P: 0.30, "x1": 0.05})
    experiment = _create(
        [
            {"metric": "prediction_psi", "tolerance": 0.1},
            {"metric": "feature_psi_max", "tolerance": 0.1, "max": 0.25},
        ]
    )
    _look(experiment)
    client = Client()
    client.force_login(role_user("dana", "data scientist"))
    page = client.get(reverse("admin:experiments_experiment_change", args=[experiment.pk])).content.decode()
    assert 'id="experiment-guardrail-results"' in page
    assert "chall: prediction_psi failed" in page and "feature_psi_max: challenger 0.05" in page
    assert "at most 0.25" in page
    body = client.get(f"/api/v1/experiments/{experiment.pk}/").json()
    (comparison,) = body["latest_look"]["snapshot"]["comparisons"]
    assert {g["metric"]: g["status"] for g in comparison["guardrails"]} == {
        "prediction_psi": "failed",
        "feature_psi_max": "passed",
    }
