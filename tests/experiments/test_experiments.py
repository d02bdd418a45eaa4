"""Experiments: a plan when created, an audited timeline, looks stored with always-valid verdicts,
SRM per weight epoch withholding the verdict. Traffic and feedback are planted as rows of the
prediction log and the feedback table (the HTTP path has its own tests), so a test can hold
thousands of units."""

from __future__ import annotations

import io
import itertools
import random
from datetime import timedelta

import pytest
from django.utils import timezone

from experiments.models import Experiment, ExperimentLook, Feedback
from experiments.services import (
    experiment_analyze,
    experiment_create,
    experiment_start,
    experiment_stop,
    experiments_analyze_running,
)
from registry.models import AuditEvent
from routing.governance.errors import GovernanceError
from routing.governance.services import traffic_split_set
from routing.models import PredictionLog
from tests.routing.helpers import make_model, role_user

pytestmark = pytest.mark.django_db

TWO_ARMS = [
    {"name": "champ", "role": "champion", "version": 1, "weight": 50},
    {"name": "chall", "role": "challenger", "version": 2, "weight": 50},
]
_ids = itertools.count()


def plant(
    endpoint: str, variant: str, version: int, n: int, accuracy: float, *, at=None, seed: int = 0
) -> None:
    """``n`` answered one-row predictions of ``variant`` and their ground truth, ``accuracy`` right."""
    rng = random.Random(seed)
    at = at or timezone.now()
    logs, feedback = [], []
    for _ in range(n):
        rid = f"r-{next(_ids)}"
        right = rng.random() < accuracy
        logs.append(
            PredictionLog(
                created_at=at,
                request_id=rid,
                endpoint=endpoint,
                variant=variant,
                model_name="m",
                model_version=version,
                inputs={},
                outputs=[1],
                latency_ms=1.0,
            )
        )
        feedback.append(
            Feedback(
                endpoint=endpoint,
                kind="ground_truth",
                request_id=rid,
                row=0,
                label=1 if right else 0,
                prediction=1,
                variant=variant,
                model_version=version,
                predicted_at=at,
                received_at=at,
            )
        )
    PredictionLog.objects.bulk_create(logs)
    Feedback.objects.bulk_create(feedback)


@pytest.fixture
def endpoint(serving, mlflow_server, trained_models):
    # A registered model of its own: weight changes move MLflow aliases, which must not leak
    # into other tests' shared model.
    fresh = make_model(mlflow_server.client(), trained_models)
    serving.endpoint("ab", TWO_ARMS, model=fresh.name)
    return "ab"


def _create(**kwargs):
    args = {
        "actor": "system",
        "endpoint_name": "ab",
        "name": "accuracy test",
        "primary_metric": "accuracy",
        "minimum_effect": 0.05,
        "baseline_mean": 0.9,
        "reason": "does v3 beat v1?",
    }
    return experiment_create(**{**args, **kwargs})


def test_creating_plans_the_sample_size_and_duration_at_current_traffic(endpoint):
    plant("ab", "champ", 1, 240, 0.9, at=timezone.now() - timedelta(hours=2))
    experiment = _create()
    plan = experiment.plan
    assert experiment.status == "draft" and experiment.arms == ["champ", "chall"]
    assert plan["planned_units"]["champ"] > plan["fixed_horizon_units"]["champ"] > 100
    assert plan["units_per_day"] == 240
    assert plan["expected_days"] == pytest.approx(plan["planned_units"]["chall"] / 120, rel=0.01)
    event = AuditEvent.objects.get(action="experiments.create")
    assert event.reason == "does v3 beat v1?" and event.after["plan"] == plan


def test_refused_designs_say_why(endpoint):
    cases = [
        ({"primary_metric": "clicks"}, "primary_metric"),
        ({"challengers": ["champ"]}, "challengers"),
        ({"minimum_effect": 0}, "minimum_effect"),
        ({"primary_metric": "absolute_error", "baseline_mean": None}, "baseline_mean"),
        ({"guardrails": [{"metric": "cpu", "tolerance": 1}]}, "guardrail"),
        ({"reason": ""}, "reason"),
    ]
    for change, word in cases:
        with pytest.raises(GovernanceError) as refused:
            _create(**change)
        assert word in refused.value.message, (change, refused.value.message)
    assert not Experiment.objects.exists()


def test_a_user_without_the_permission_cannot_run_one_and_a_data_scientist_can(endpoint):
    with pytest.raises(GovernanceError) as refused:
        _create(actor=role_user("ops", "SRE"))
    assert refused.value.status == 403
    assert _create(actor=role_user("dana", "data scientist")).created_by == "dana"


def test_start_weight_changes_and_stop_are_on_its_timeline_and_one_runs_per_endpoint(endpoint):
    experiment = _create()
    experiment_start(actor="system", experiment_id=experiment.pk, reason="go")
    with pytest.raises(GovernanceError) as busy:
        experiment_start(actor="system", experiment_id=_create(name="second").pk, reason="go")
    assert busy.value.status == 409
    traffic_split_set(
        actor="system", endpoint_name="ab", weights={"champ": 70, "chall": 30}, reason="less risk"
    )
    experiment_stop(actor="system", experiment_id=experiment.pk, reason="enough")
    experiment.refresh_from_db()
    assert experiment.status == "stopped" and experiment.stopped_at >= experiment.started_at
    actions = [
        e.action for e in AuditEvent.objects.filter(object_type="experiment", object_id=str(experiment.pk))
    ]
    assert sorted(actions) == ["experiments.create", "experiments.start", "experiments.stop"]
    start = AuditEvent.objects.get(action="experiments.start", object_id=str(experiment.pk))
    assert start.after["weights"] == {"champ": 50, "chall": 50}
    assert ExperimentLook.objects.filter(experiment=experiment).count() == 1  # the stop's last look


def test_a_clearly_worse_challenger_gets_worse_and_the_verdict_stays_across_looks(endpoint):
    experiment = _create()
    experiment_start(actor="system", experiment_id=experiment.pk, reason="go")
    plant("ab", "champ", 1, 600, 0.92, seed=1)
    plant("ab", "chall", 2, 600, 0.70, seed=2)
    look = experiment_analyze(experiment_id=experiment.pk)
    assert look.outcomes == {"chall": "worse"} and not look.srm_flagged
    comparison = look.snapshot["comparisons"][0]
    assert comparison["sequential"]["ci_high"] < 0
    assert "worse" in comparison["verdict"]["sentence"]
    arms = {a["name"]: a for a in look.snapshot["arms"]}
    assert arms["champ"]["units"] == 600 and 0.85 < arms["champ"]["mean"] < 0.97
    # A later look with noisier data cannot loosen the running interval or raise the p-value.
    plant("ab", "chall", 2, 50, 1.0, seed=3)
    again = experiments_analyze_running(endpoint_name="ab")[0].snapshot["comparisons"][0]["sequential"]
    assert again["p_value"] <= comparison["sequential"]["p_value"]
    assert again["ci_high"] <= comparison["sequential"]["ci_high"]


def test_an_equal_challenger_is_not_called_better_or_worse(endpoint):
    experiment = _create()
    experiment_start(actor="system", experiment_id=experiment.pk, reason="go")
    plant("ab", "champ", 1, 800, 0.9, seed=4)
    plant("ab", "chall", 2, 800, 0.9, seed=5)
    look = experiment_analyze(experiment_id=experiment.pk)
    assert look.outcomes["chall"] in ("no_difference", "not_yet")
    assert (
        "more units" in look.snapshot["comparisons"][0]["verdict"]["sentence"]
        or look.outcomes["chall"] == "no_difference"
    )


def test_a_lost_share_of_one_arm_is_flagged_per_weight_epoch_and_the_verdict_withheld(endpoint):
    experiment = _create()
    experiment_start(actor="system", experiment_id=experiment.pk, reason="go")
    plant("ab", "champ", 1, 1000, 0.92, seed=6)
    plant("ab", "chall", 2, 800, 0.70, seed=7)  # 50/50 weights, but a fifth of the challenger's units lost
    look = experiment_analyze(experiment_id=experiment.pk)
    assert look.srm_flagged and look.outcomes == {"chall": "withheld_srm"}
    assert "sample ratio mismatch" in look.snapshot["comparisons"][0]["verdict"]["sentence"]


def test_weight_epochs_follow_the_audited_weight_changes(endpoint):
    experiment = _create()
    experiment_start(actor="system", experiment_id=experiment.pk, reason="go")
    plant("ab", "champ", 1, 500, 0.9, seed=8)
    plant("ab", "chall", 2, 500, 0.9, seed=9)
    traffic_split_set(
        actor="system", endpoint_name="ab", weights={"champ": 80, "chall": 20}, reason="ramp down"
    )
    later = timezone.now()
    plant("ab", "champ", 1, 800, 0.9, at=later, seed=10)
    plant("ab", "chall", 2, 200, 0.9, at=later, seed=11)
    look = experiment_analyze(experiment_id=experiment.pk)
    # 1500 vs 700 units overall would be a mismatch against either split; per epoch both fit.
    assert not look.srm_flagged
    assert len(look.snapshot["srm"]["epochs"]) == 2 and look.snapshot["srm"]["dof"] == 2


def test_analyze_experiments_json_prints_one_object_with_every_look_for_pipelines(endpoint):
    import json

    from django.core.management import call_command

    experiment = _create()
    experiment_start(actor="system", experiment_id=experiment.pk, reason="go")
    plant("ab", "champ", 1, 600, 0.92, seed=1)
    plant("ab", "chall", 2, 600, 0.70, seed=2)
    out = io.StringIO()
    call_command("analyze_experiments", "--json", "--endpoint", "ab", stdout=out)
    printed = json.loads(out.getvalue())
    (look,) = printed["looks"]
    assert look["experiment"] == "accuracy test" and look["endpoint"] == "ab"
    assert look["outcomes"] == {"chall": "worse"} and look["srm_flagged"] is False
    assert look["comparisons"][0]["verdict"]["sentence"]
    assert printed["verdicts"] == {"accuracy test": {"chall": "worse"}}
