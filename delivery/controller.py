"""The rollout controller: one tick advances, holds or rolls back each active plan.

A tick of one plan:

1. read the plan (no lock); skip it unless it is due (``ROLLOUT_TICK_SECONDS`` / 2 since its last
   evaluation: however many controllers run, a plan is evaluated once per tick);
2. evaluate its checks outside any transaction (a PromQL check waits on Prometheus);
3. in one transaction: lock the endpoint row (the order every governance service uses), then
   *claim* the plan by bumping its ``revision`` only if it is still the one read in step 1;
   a controller that lost the race (another acted, or a person paused it meanwhile) does nothing;
4. act through ``routing.governance`` as the actor ``rollout``, with the check results as the
   reason: ``traffic_split_set`` (next step), ``endpoint_promote`` or ``promotion_request``
   (last step), ``challenger_retire`` (rollback). A refused action (a failed promotion gate,
   MLflow away) is rolled back to a savepoint and recorded on the timeline; the plan holds.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from delivery.checks import FAIL, WAIT, CheckResult, Window, checks_evaluate
from delivery.models import RolloutEvent, RolloutPlan
from delivery.services import (
    ROLLOUT_ACTOR,
    approval_needed,
    plan_audit,
    plan_event,
    plan_snapshot,
)
from monitoring import metrics
from routing.governance.errors import GovernanceError
from routing.governance.promotion import endpoint_promote, promotion_request
from routing.governance.rules import endpoint_locked, weights_scaled
from routing.governance.services import challenger_retire, traffic_split_set
from routing.models import PromotionRequest, Variant

log = logging.getLogger(__name__)
Status, Kind, Role = RolloutPlan.Status, RolloutEvent.Kind, Variant.Role


@dataclass(frozen=True)
class Decision:
    """What a tick does: advance, hold or roll back (``kind`` is the timeline event)."""

    kind: str
    summary: str


def plan_due(plan: RolloutPlan, now: datetime) -> bool:
    """Evaluated at most once per half tick period, whatever number of controllers run."""
    if plan.last_evaluated_at is None:
        return True
    return now - plan.last_evaluated_at >= timedelta(seconds=settings.ROLLOUT_TICK_SECONDS / 2)


def results_summary(results: list[CheckResult]) -> str:
    return "; ".join(f"{r.check} {r.result} ({r.detail})" for r in results) or "no checks"


def decide(plan: RolloutPlan, results: list[CheckResult], now: datetime) -> Decision:
    """Fail -> count (and roll back at the limit); wait or still baking -> hold; all passed -> advance."""
    summary = results_summary(results)
    if any(r.result == FAIL for r in results):
        if plan.step_failures + 1 >= plan.failures_to_rollback:
            return Decision(Kind.ROLLED_BACK, summary)
        return Decision(Kind.EVALUATED, summary)
    baked = now >= plan.step_started_at + timedelta(seconds=plan.bake_seconds)
    if not baked or any(r.result == WAIT for r in results):
        return Decision(Kind.EVALUATED, summary)
    if not plan.is_last_step:
        return Decision(Kind.ADVANCED, summary)
    return Decision(Kind.AWAITING_APPROVAL if approval_needed(plan) else Kind.PROMOTED, summary)


def _claimed(plan: RolloutPlan, now: datetime) -> bool:
    """Take this tick of the plan: only if nobody changed it since it was read (one winner)."""
    won = RolloutPlan.objects.filter(pk=plan.pk, revision=plan.revision, status=plan.status).update(
        revision=F("revision") + 1, last_evaluated_at=now
    )
    plan.revision += 1
    plan.last_evaluated_at = now
    return won == 1


def rollout_tick(*, plan_id: int, now: datetime | None = None) -> str:
    """One controller tick of one plan; returns what happened (for logs, tests and task metrics)."""
    now = now or timezone.now()
    plan = RolloutPlan.objects.select_related("endpoint__registered_model", "variant__model_version").get(
        pk=plan_id
    )
    if plan.status not in (Status.RUNNING, Status.AWAITING_APPROVAL) or not plan_due(plan, now):
        return "not_due"
    results: list[CheckResult] = []
    if plan.status == Status.RUNNING and plan.variant.role == Role.CHALLENGER:
        champion = plan.endpoint.variants.select_related("model_version").get(role=Role.CHAMPION)
        window = Window(plan.endpoint.name, plan.variant, champion, plan.step_started_at)
        results = checks_evaluate(window, plan.checks)
    with transaction.atomic():
        endpoint_locked(plan.endpoint.name)
        if not _claimed(plan, now):
            return "skipped"
        plan.variant.refresh_from_db()
        outcome = _act(plan, results, now)
    for r in results:
        metrics.record_rollout_check(plan.endpoint.name, r.check, r.result)
    if outcome == Kind.ROLLED_BACK:
        metrics.record_rollout_rollback(plan.endpoint.name)
    return outcome


def _act(plan: RolloutPlan, results: list[CheckResult], now: datetime) -> str:
    """Inside the tick's transaction, with the plan claimed."""
    if plan.variant.role != Role.CHALLENGER:
        return _ended_outside(plan)
    if plan.status == Status.AWAITING_APPROVAL:
        return _approval_followed(plan)
    decision = decide(plan, results, now)
    checks = [r.as_json() for r in results]
    try:
        with transaction.atomic():  # a savepoint: a refused action leaves the plan as it was
            _apply(plan, decision, checks, now)
    except GovernanceError as exc:
        plan.outcome = f"held: {exc.code}: {exc.message}"
        plan.save(update_fields=["outcome"])
        plan_event(plan, Kind.ERROR, ROLLOUT_ACTOR, checks=checks, note=plan.outcome)
        return Kind.ERROR
    return decision.kind


def _reason(plan: RolloutPlan, what: str, decision: Decision) -> str:
    return f"rollout plan {plan.pk}: {what}. Checks: {decision.summary}"


def _apply(plan: RolloutPlan, decision: Decision, checks: list, now: datetime) -> None:
    before = plan_snapshot(plan)
    name, n = plan.endpoint.name, len(plan.steps)
    if decision.kind == Kind.EVALUATED:
        failed = any(c["result"] == FAIL for c in checks)
        if failed:
            plan.step_failures += 1
            plan.save(update_fields=["step_failures"])
        note = (
            f"held ({plan.step_failures}/{plan.failures_to_rollback} failed evaluations)"
            if failed
            else "held"
        )
        plan_event(plan, Kind.EVALUATED, ROLLOUT_ACTOR, checks=checks, note=note)
        return
    if decision.kind == Kind.ROLLED_BACK:
        reason = _reason(plan, f"rolled back at step {plan.step_index + 1}/{n} ({plan.percent} %)", decision)
        challenger_retire(
            actor=ROLLOUT_ACTOR, endpoint_name=name, variant_name=plan.variant.name, reason=reason
        )
        plan.status, plan.finished_at, plan.outcome = Status.ROLLED_BACK, now, reason
    elif decision.kind == Kind.ADVANCED:
        target = plan.steps[plan.step_index + 1]
        reason = _reason(plan, f"step {plan.step_index + 2}/{n}: {plan.percent} % -> {target} %", decision)
        traffic_split_set(
            actor=ROLLOUT_ACTOR, endpoint_name=name, weights=_weights(plan, target), reason=reason
        )
        plan.step_index += 1
        plan.step_started_at, plan.step_failures, plan.outcome = now, 0, ""
    elif decision.kind == Kind.PROMOTED:
        reason = _reason(plan, f"every step passed; {plan.variant.name} promoted", decision)
        endpoint_promote(
            actor=ROLLOUT_ACTOR, endpoint_name=name, variant_name=plan.variant.name, reason=reason
        )
        plan.status, plan.finished_at, plan.outcome = Status.COMPLETED, now, reason
    else:  # awaiting approval: the plan's starter requests, a different approver approves
        reason = _reason(
            plan, f"every step passed; promotion of {plan.variant.name} awaits approval", decision
        )
        plan.promotion_request = promotion_request(
            actor=plan.created_by, endpoint_name=name, variant_name=plan.variant.name, reason=reason
        )
        plan.status, plan.step_started_at, plan.outcome = Status.AWAITING_APPROVAL, now, reason
    plan.save()
    plan_event(plan, decision.kind, ROLLOUT_ACTOR, checks=checks, note=reason)
    plan_audit(ROLLOUT_ACTOR, f"rollout_{decision.kind}", plan, before, reason)


def _weights(plan: RolloutPlan, percent: int) -> dict[str, int]:
    """The challenger at ``percent``; every other weighted variant keeps its proportion of the rest."""
    others = {
        v.name: v.weight
        for v in plan.endpoint.variants.filter(role__in=Variant.WEIGHTED_ROLES).exclude(pk=plan.variant_id)
    }
    return {**weights_scaled(others, 100 - percent), plan.variant.name: percent}


def _approval_followed(plan: RolloutPlan) -> str:
    """An awaited promotion decided elsewhere (the routing admin's approve or reject buttons)."""
    request = PromotionRequest.objects.filter(pk=plan.promotion_request_id).first()
    if request is None or request.status == PromotionRequest.Status.PENDING:
        return "awaiting_approval"
    before = plan_snapshot(plan)
    reason = f"rollout plan {plan.pk}: promotion request {request.pk} {request.status}"
    if request.decision_reason:
        reason += f" ({request.decision_reason})"
    challenger_retire(
        actor=ROLLOUT_ACTOR, endpoint_name=plan.endpoint.name, variant_name=plan.variant.name, reason=reason
    )
    plan.status, plan.finished_at, plan.outcome = Status.ABORTED, timezone.now(), reason
    plan.save()
    plan_event(plan, Kind.ABORTED, ROLLOUT_ACTOR, note=reason)
    plan_audit(ROLLOUT_ACTOR, "rollout_aborted", plan, before, reason)
    return Kind.ABORTED


def _ended_outside(plan: RolloutPlan) -> str:
    """Someone promoted or retired the challenger by hand: the plan records how it ended."""
    before = plan_snapshot(plan)
    promoted = plan.variant.role == Role.CHAMPION
    plan.status = Status.COMPLETED if promoted else Status.ABORTED
    plan.finished_at = timezone.now()
    request = plan.promotion_request
    if promoted and request is not None and request.status == PromotionRequest.Status.APPLIED:
        plan.outcome = f"promoted: request {request.pk} approved by {request.decided_by or 'the system'}"
    else:
        plan.outcome = f"{plan.variant.name} became {plan.variant.role} outside the plan"
    plan.save()
    plan_event(plan, Kind.PROMOTED if promoted else Kind.ABORTED, ROLLOUT_ACTOR, note=plan.outcome)
    plan_audit(ROLLOUT_ACTOR, "rollout_ended_outside", plan, before, plan.outcome)
    return plan.status


def rollout_controller_run(*, now: datetime | None = None) -> dict[str, int]:
    """One controller tick over every plan the controller drives: outcome -> number of plans."""
    done: dict[str, int] = {}
    ids = RolloutPlan.objects.filter(status__in=(Status.RUNNING, Status.AWAITING_APPROVAL)).values_list(
        "pk", flat=True
    )
    for plan_id in list(ids):
        try:
            outcome = rollout_tick(plan_id=plan_id, now=now)
        except GovernanceError as exc:  # e.g. the endpoint vanished; the next tick tries again
            log.warning("rollout plan %s: %s", plan_id, exc)
            outcome = "error"
        done[outcome] = done.get(outcome, 0) + 1
    return done
