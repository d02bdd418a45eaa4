"""Rollout plans end to end in one process: start, steps, rollback, promotion, four-eyes, pause.

The controller runs here as ``rollout_tick`` with an explicit clock; MLflow is the session's real
server, so every alias assertion reads MLflow itself.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from delivery.controller import rollout_controller_run, rollout_tick
from delivery.models import RolloutEvent, RolloutPlan
from delivery.services import rollout_abort, rollout_approve, rollout_pause, rollout_resume, rollout_start
from registry.models import AuditEvent
from routing.governance.errors import GovernanceError
from routing.models import PromotionRequest, Variant
from tests.delivery.conftest import aliases as mlflow_aliases
from tests.delivery.conftest import log_rows
from tests.routing.helpers import alias_pushes_applied


def aliases(mlflow_server, name: str) -> dict[str, int]:
    """MLflow's aliases of ``name`` once the alias outbox has pushed every change made so far."""
    alias_pushes_applied(name)
    return mlflow_aliases(mlflow_server, name)


pytestmark = pytest.mark.django_db

FAST = {"min_requests": {"count": 50}, "error_rate": {"max_increase": 0.01}}


def _weights() -> dict[str, tuple[str, int]]:
    return {
        v.name: (v.role, v.weight)
        for v in Variant.objects.filter(endpoint__name="ep")
        if v.role in ("champion", "challenger")
    }


def _start(actor, **kwargs) -> RolloutPlan:
    kwargs = {
        "steps": [1, 5, 25, 50],
        "bake_seconds": 60,
        "checks": FAST,
        "reason": "canary v2",
        "version": 2,
        **kwargs,
    }
    return rollout_start(actor=actor, endpoint_name="ep", **kwargs)


def _later(plan: RolloutPlan, seconds: float = 61):
    plan.refresh_from_db()
    return plan.step_started_at + timedelta(seconds=seconds)


def _traffic_at_step(plan: RolloutPlan, challenger_ok: int = 60) -> None:
    """Requests logged during the plan's current step (its clock may run ahead of the wall clock)."""
    plan.refresh_from_db()
    at = plan.step_started_at + timedelta(seconds=1)
    log_rows("v2", challenger_ok, at=at)
    log_rows("v1", 200, at=at)


def test_starting_a_plan_puts_the_challenger_at_the_first_step_audited_with_its_alias(
    endpoint, scientist, mlflow_server, fresh_model
):
    plan = _start(scientist)

    assert _weights() == {"v1": ("champion", 99), "v2": ("challenger", 1)}
    assert aliases(mlflow_server, fresh_model.name) == {"champion": 1, "challenger": 2}
    assert plan.status == "running" and plan.percent == 1 and plan.started_by == "dana"
    started = AuditEvent.objects.get(action="routing.challenger_started")
    assert started.actor == "dana" and "rollout plan, step 1/4 at 1 %" in started.reason
    assert AuditEvent.objects.filter(action="delivery.rollout_started", object_id=str(plan.pk)).count() == 1
    assert list(plan.events.values_list("kind", flat=True)) == ["started"]


def test_a_baked_step_whose_checks_pass_advances_once_by_the_rollout_actor_with_the_checks_as_reason(
    endpoint, scientist, mlflow_server, fresh_model
):
    plan = _start(scientist)
    _traffic_at_step(plan)

    assert rollout_tick(plan_id=plan.pk, now=_later(plan)) == "advanced"

    assert _weights() == {"v1": ("champion", 95), "v2": ("challenger", 5)}
    step = AuditEvent.objects.get(action="routing.traffic_split_set")
    assert step.actor == "rollout" and step.actor_kind == "system"
    assert "step 2/4: 1 % -> 5 %" in step.reason
    assert "error_rate pass" in step.reason and "min_requests pass (60 of 50" in step.reason
    plan.refresh_from_db()
    assert plan.step_index == 1 and plan.percent == 5
    event = plan.events.get(kind="advanced")
    assert {c["check"]: c["result"] for c in event.checks} == {"error_rate": "pass", "min_requests": "pass"}
    assert aliases(mlflow_server, fresh_model.name) == {"champion": 1, "challenger": 2}


def test_a_step_is_held_while_it_bakes_and_while_requests_are_too_few(endpoint, scientist):
    plan = _start(scientist)
    log_rows("v2", 10)
    log_rows("v1", 200)

    assert rollout_tick(plan_id=plan.pk, now=_later(plan, 30)) == "evaluated"  # baking
    assert rollout_tick(plan_id=plan.pk, now=_later(plan, 100)) == "evaluated"  # only 10 of 50 requests

    plan.refresh_from_db()
    assert plan.step_index == 0 and plan.step_failures == 0
    assert _weights()["v2"] == ("challenger", 1)
    held = plan.events.filter(kind="evaluated").last()
    assert {c["check"]: c["result"] for c in held.checks}["min_requests"] == "wait"


def test_a_plan_is_evaluated_once_per_tick_however_often_the_controller_is_called(
    endpoint, scientist, settings
):
    settings.ROLLOUT_TICK_SECONDS = 30
    plan = _start(scientist, bake_seconds=0)
    _traffic_at_step(plan)
    now = _later(plan, 1)

    outcomes = [rollout_tick(plan_id=plan.pk, now=now + timedelta(seconds=s)) for s in (0, 1, 14)]

    assert outcomes == ["advanced", "not_due", "not_due"]
    assert _weights()["v2"] == ("challenger", 5)
    assert rollout_tick(plan_id=plan.pk, now=now + timedelta(seconds=15)) in ("evaluated", "advanced")


def test_errors_at_a_step_roll_the_challenger_back_and_the_aliases_end_where_they_started(
    endpoint, scientist, mlflow_server, fresh_model
):
    assert aliases(mlflow_server, fresh_model.name) == {"champion": 1}
    plan = _start(scientist)
    log_rows("v2", 40)
    log_rows("v2", 20, failed=True)  # a third of the challenger's requests failed over to v1
    log_rows("v1", 200)

    assert rollout_tick(plan_id=plan.pk, now=_later(plan, 5)) == "rolled_back"  # even while baking

    assert _weights() == {"v1": ("champion", 100)}
    assert aliases(mlflow_server, fresh_model.name) == {"champion": 1}
    plan.refresh_from_db()
    assert plan.status == "rolled_back" and plan.percent == 0 and plan.finished_at is not None
    retired = AuditEvent.objects.get(action="routing.challenger_retired")
    assert retired.actor == "rollout" and "error_rate fail (challenger 33.33% (20/60)" in retired.reason
    assert AuditEvent.objects.filter(action="delivery.rollout_rolled_back").count() == 1
    assert rollout_controller_run(now=_later(plan, 500)) == {}  # an ended plan is left alone


def test_failures_to_rollback_holds_the_step_until_that_many_evaluations_failed(
    endpoint, scientist, settings
):
    settings.ROLLOUT_TICK_SECONDS = 10
    plan = _start(scientist, failures_to_rollback=2)
    log_rows("v2", 30)
    log_rows("v2", 30, failed=True)

    assert rollout_tick(plan_id=plan.pk, now=_later(plan, 5)) == "evaluated"
    plan.refresh_from_db()
    assert plan.status == "running" and plan.step_failures == 1
    assert rollout_tick(plan_id=plan.pk, now=_later(plan, 20)) == "rolled_back"


def test_a_good_challenger_walks_every_step_and_becomes_champion_with_the_champion_alias(
    endpoint, scientist, mlflow_server, fresh_model
):
    plan = _start(scientist)
    for expected in (5, 25, 50):
        _traffic_at_step(plan)
        assert rollout_tick(plan_id=plan.pk, now=_later(plan)) == "advanced"
        assert _weights()["v2"] == ("challenger", expected)
    _traffic_at_step(plan)

    assert rollout_tick(plan_id=plan.pk, now=_later(plan)) == "promoted"

    assert _weights() == {"v2": ("champion", 100)}
    assert aliases(mlflow_server, fresh_model.name) == {"champion": 2}
    plan.refresh_from_db()
    assert plan.status == "completed" and plan.percent == 100
    trail = list(AuditEvent.objects.filter(actor="rollout").order_by("pk").values_list("action", flat=True))
    assert trail.count("routing.traffic_split_set") == 3 and "routing.endpoint_promoted" in trail
    kinds = list(plan.events.values_list("kind", "percent"))
    assert kinds == [("started", 1), ("advanced", 5), ("advanced", 25), ("advanced", 50), ("promoted", 100)]


def test_with_approval_required_the_plan_waits_and_a_second_person_completes_it(
    endpoint, scientist, approver, mlflow_server, fresh_model
):
    plan = _start(scientist, steps=[10], approval_required=True)
    _traffic_at_step(plan)

    assert rollout_tick(plan_id=plan.pk, now=_later(plan)) == "awaiting_approval"

    plan.refresh_from_db()
    assert plan.status == "awaiting_approval" and _weights()["v2"] == ("challenger", 10)
    request = PromotionRequest.objects.get(pk=plan.promotion_request_id)
    assert request.requested_by == scientist and request.status == "pending"
    with pytest.raises(GovernanceError) as own:
        rollout_approve(actor=scientist, plan_id=plan.pk)
    assert own.value.status == 403
    assert aliases(mlflow_server, fresh_model.name) == {"champion": 1, "challenger": 2}

    rollout_approve(actor=approver, plan_id=plan.pk, reason="looks right")

    plan.refresh_from_db()
    assert plan.status == "completed" and _weights() == {"v2": ("champion", 100)}
    assert aliases(mlflow_server, fresh_model.name) == {"champion": 2}
    promoted = AuditEvent.objects.get(action="routing.endpoint_promoted")
    assert promoted.actor == "abel" and promoted.after["requested_by"] == "dana"


def test_installation_wide_four_eyes_also_stops_an_automatic_plan(endpoint, scientist, approver, settings):
    settings.REQUIRE_PROMOTION_APPROVAL = True
    plan = _start(scientist, steps=[10])
    _traffic_at_step(plan)

    assert rollout_tick(plan_id=plan.pk, now=_later(plan)) == "awaiting_approval"
    with pytest.raises(GovernanceError):
        _start("system", steps=[10])  # no person to be the requester


def test_a_promotion_approved_in_the_routing_admin_completes_the_plan_at_the_next_tick(
    endpoint, scientist, approver
):
    from routing.governance.promotion import promotion_approve

    plan = _start(scientist, steps=[10], approval_required=True)
    _traffic_at_step(plan)
    rollout_tick(plan_id=plan.pk, now=_later(plan))
    plan.refresh_from_db()
    promotion_approve(actor=approver, request_id=plan.promotion_request_id)

    assert rollout_tick(plan_id=plan.pk, now=_later(plan, 3600)) == "completed"
    plan.refresh_from_db()
    assert plan.status == "completed" and "approved by abel" in plan.outcome


def test_pause_holds_traffic_resume_restarts_the_bake_abort_retires_the_challenger(
    endpoint, scientist, mlflow_server, fresh_model
):
    plan = _start(scientist)
    _traffic_at_step(plan)
    rollout_pause(actor=scientist, plan_id=plan.pk, reason="incident elsewhere")

    assert rollout_tick(plan_id=plan.pk, now=_later(plan)) == "not_due"
    assert _weights()["v2"] == ("challenger", 1)
    with pytest.raises(GovernanceError) as twice:
        rollout_pause(actor=scientist, plan_id=plan.pk, reason="again")
    assert twice.value.status == 409

    resumed = rollout_resume(actor=scientist, plan_id=plan.pk, reason="incident over")
    assert resumed.status == "running" and resumed.step_started_at > plan.step_started_at
    rollout_abort(actor=scientist, plan_id=plan.pk, reason="changed my mind")

    assert _weights() == {"v1": ("champion", 100)}
    assert aliases(mlflow_server, fresh_model.name) == {"champion": 1}
    plan.refresh_from_db()
    assert plan.status == "aborted"
    kinds = list(plan.events.values_list("kind", flat=True))
    assert kinds == ["started", "paused", "resumed", "aborted"]
    assert AuditEvent.objects.filter(object_type="rollout_plan").count() == 4


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"steps": [5, 1]}, "invalid"),
        ({"steps": []}, "invalid"),
        ({"steps": [1, 100]}, "invalid"),
        ({"bake_seconds": -1}, "invalid"),
        ({"checks": {"nonsense": {}}}, "invalid"),
        ({"checks": {"latency": {"percentile": "high"}}}, "invalid"),
        ({"checks": {"promql": {"query": "up", "max": 1}}}, "invalid"),  # no ROLLOUT_PROMETHEUS_URL
        ({"version": 99}, "version_not_found"),
    ],
)
def test_bad_plans_are_refused_with_nothing_started(endpoint, scientist, change, code):
    with pytest.raises(GovernanceError) as refused:
        _start(scientist, **change)

    assert refused.value.code == code and refused.value.status == 400
    assert _weights() == {"v1": ("champion", 100)} and not RolloutPlan.objects.exists()


def test_one_active_plan_per_endpoint_and_a_person_without_permission_is_refused(endpoint, scientist, db):
    from tests.routing.helpers import role_user

    _start(scientist)
    with pytest.raises(GovernanceError) as second:
        rollout_start(
            actor=scientist, endpoint_name="ep", version=3, steps=[5], bake_seconds=0, reason="another"
        )
    assert second.value.status == 409
    nobody = role_user("nobody")
    with pytest.raises(GovernanceError) as refused:
        rollout_pause(actor=nobody, plan_id=RolloutPlan.objects.get().pk, reason="x")
    assert refused.value.status == 403


def test_a_challenger_retired_by_hand_ends_the_plan_at_the_next_tick(endpoint, scientist):
    from routing.governance.services import challenger_retire

    plan = _start(scientist)
    challenger_retire(actor=scientist, endpoint_name="ep", variant_name="v2", reason="by hand")

    assert rollout_tick(plan_id=plan.pk, now=_later(plan)) == "aborted"
    assert RolloutEvent.objects.filter(plan=plan, kind="aborted").exists()


def test_a_refused_promotion_holds_the_plan_and_is_on_its_timeline(endpoint, scientist, fresh_model):
    from routing.models import Endpoint

    Endpoint.objects.filter(name="ep").update(gate_metric="no_such_metric")
    plan = _start(scientist, steps=[10])
    _traffic_at_step(plan)

    assert rollout_tick(plan_id=plan.pk, now=_later(plan)) == "error"

    plan.refresh_from_db()
    assert plan.status == "running" and _weights()["v2"] == ("challenger", 10)
    assert "gate_failed" in plan.outcome
    assert plan.events.filter(kind="error").count() == 1
    assert not AuditEvent.objects.filter(action="routing.endpoint_promoted").exists()
    _ = timezone
