"""What people do with rollout plans: start, pause, resume, abort, approve the final promotion.

Each service is atomic, checks the actor's permission, locks the endpoint row before the plan
row (the order every governance service and the controller use, so none can deadlock), writes a
timeline event and an audit row (``delivery.rollout_*``) in the same transaction, and moves
traffic and MLflow aliases only through ``routing.governance``: a plan changes an endpoint
exactly as a person's own action would. The controller's side is ``delivery.controller``.
"""

from __future__ import annotations

import itertools
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from delivery.checks import checks_validated
from delivery.models import RolloutEvent, RolloutPlan
from delivery.permissions import rollout_permission_check
from registry.audit import audit_record
from routing.governance.errors import GovernanceError
from routing.governance.permissions import Actor
from routing.governance.promotion import promotion_approve
from routing.governance.rules import endpoint_locked, int_in_range, reason_required
from routing.governance.services import challenger_retire, challenger_start
from routing.models import Variant

ROLLOUT_ACTOR = "rollout"
Status = RolloutPlan.Status


def actor_name(actor: Actor) -> str:
    return actor if isinstance(actor, str) else (actor.get_username() or "anonymous")


def plan_snapshot(plan: RolloutPlan) -> dict[str, Any]:
    """The plan's state as audit JSON."""
    return {
        "endpoint": plan.endpoint.name,
        "variant": plan.variant.name,
        "version": plan.variant.model_version.version,
        "status": plan.status,
        "steps": plan.steps,
        "step_index": plan.step_index,
        "percent": plan.percent,
        "bake_seconds": plan.bake_seconds,
        "checks": plan.checks,
        "failures_to_rollback": plan.failures_to_rollback,
        "approval_required": plan.approval_required,
    }


def plan_event(
    plan: RolloutPlan, kind: str, actor: Actor, *, checks: list | None = None, note: str = ""
) -> None:
    """Append one line to the plan's timeline (share after the event, the checks, why)."""
    RolloutEvent.objects.create(
        plan=plan,
        at=timezone.now(),
        kind=kind,
        step_index=plan.step_index,
        percent=plan.percent,
        checks=checks or [],
        actor=actor_name(actor),
        note=note,
    )


def plan_audit(actor: Actor, action: str, plan: RolloutPlan, before: dict[str, Any], reason: str) -> None:
    audit_record(
        actor=actor,
        action=f"delivery.{action}",
        object_type="rollout_plan",
        object_id=plan.pk,
        object_repr=f"{plan.endpoint.name}: {plan.variant.name} (plan {plan.pk})",
        before=before,
        after=plan_snapshot(plan),
        reason=reason,
    )


def plan_save(plan: RolloutPlan, *fields: str) -> None:
    """Save ``fields`` and bump the revision: a controller that evaluated the old state cannot act."""
    plan.revision += 1
    plan.save(update_fields=[*fields, "revision"])


def approval_needed(plan: RolloutPlan) -> bool:
    """Four-eyes stays enforced: the plan's own flag, or the installation's promotion rule."""
    return plan.approval_required or settings.REQUIRE_PROMOTION_APPROVAL


def _steps_validated(steps: Any) -> list[int]:
    if not isinstance(steps, list) or not steps or len(steps) > 20:
        raise GovernanceError("invalid", "steps must be a list of 1 to 20 percentages, e.g. [1, 5, 25, 50].")
    out = [int_in_range(s, "each step", 1, 99) for s in steps]
    if any(b <= a for a, b in itertools.pairwise(out)):
        raise GovernanceError("invalid", f"steps must increase; got {out}.")
    return out


@transaction.atomic
def rollout_start(
    *,
    actor: Actor,
    endpoint_name: str,
    version: int,
    steps: list[int],
    bake_seconds: int,
    reason: str,
    checks: dict[str, Any] | None = None,
    failures_to_rollback: int = 1,
    approval_required: bool = False,
    max_hold_seconds: int = 3600,
    model_name: str | None = None,
    name: str | None = None,
) -> RolloutPlan:
    """Start ``version`` as a canary at ``steps[0]`` % and hand it to the controller.

    The challenger is started by ``actor`` through ``challenger_start`` (audited, aliases moved);
    from then on every step is the controller's (actor ``rollout``). A plan whose promotion needs
    approval must be started by a person: that person is the promotion's requester, and a
    different approver completes it.
    """
    rollout_permission_check(actor, "rollout_start")
    reason = reason_required(reason)
    steps = _steps_validated(steps)
    bake = int_in_range(bake_seconds, "bake_seconds", 0, 7 * 86_400)
    failures = int_in_range(failures_to_rollback, "failures_to_rollback", 1, 100)
    hold = int_in_range(max_hold_seconds, "max_hold_seconds", 0, 30 * 86_400)
    checks = checks_validated(checks)
    endpoint = endpoint_locked(endpoint_name)
    plan = RolloutPlan(endpoint=endpoint, approval_required=bool(approval_required))
    if approval_needed(plan) and isinstance(actor, str):
        raise GovernanceError(
            "forbidden", "A plan whose promotion needs approval must be started by a person.", status=403
        )
    if endpoint.rollout_plans.filter(status__in=RolloutPlan.ACTIVE).exists():
        raise GovernanceError(
            "conflict", f"Endpoint {endpoint.name!r} already has an active rollout plan.", status=409
        )
    if endpoint.bandit_policies.filter(is_active=True).exists():
        raise GovernanceError(
            "conflict", f"Endpoint {endpoint.name!r} is in bandit mode; stop the bandit first.", status=409
        )
    variant = challenger_start(
        actor=actor,
        endpoint_name=endpoint.name,
        version=version,
        percent=steps[0],
        reason=f"rollout plan, step 1/{len(steps)} at {steps[0]} %: {reason}",
        model_name=model_name,
        name=name,
    )
    plan.variant, plan.steps, plan.bake_seconds, plan.checks = variant, steps, bake, checks
    plan.failures_to_rollback, plan.max_hold_seconds = failures, hold
    plan.step_started_at, plan.reason = timezone.now(), reason
    plan.created_by = None if isinstance(actor, str) else actor
    plan.started_by = actor_name(actor)
    plan.save()
    plan_event(plan, RolloutEvent.Kind.STARTED, actor, note=reason)
    plan_audit(actor, "rollout_started", plan, {}, reason)
    return plan


def plan_locked(plan_id: Any) -> RolloutPlan:
    """The plan row, locked after its endpoint's row (the order every writer uses); 404 if unknown."""
    pk = int_in_range(plan_id, "plan id", 1)
    plan = RolloutPlan.objects.filter(pk=pk).select_related("endpoint").first()
    if plan is None:
        raise GovernanceError("not_found", f"There is no rollout plan {pk}.", status=404)
    endpoint_locked(plan.endpoint.name)
    return (
        RolloutPlan.objects.select_for_update()
        .select_related("endpoint", "variant__model_version")
        .get(pk=pk)
    )


def _status_change(
    actor: Actor, plan_id: Any, reason: str, *, action: str, allowed: tuple, to: str, event: str
) -> RolloutPlan:
    rollout_permission_check(actor, action)
    reason = reason_required(reason)
    plan = plan_locked(plan_id)
    if plan.status not in allowed:
        raise GovernanceError("conflict", f"Rollout plan {plan.pk} is {plan.status}.", status=409)
    before = plan_snapshot(plan)
    plan.status = to
    fields = ["status"]
    if to == Status.RUNNING:  # the bake starts again: evidence from before the pause is not this step's
        plan.step_started_at, plan.step_failures = timezone.now(), 0
        fields += ["step_started_at", "step_failures"]
    plan_save(plan, *fields)
    plan_event(plan, event, actor, note=reason)
    plan_audit(actor, f"rollout_{event}", plan, before, reason)
    return plan


@transaction.atomic
def rollout_pause(*, actor: Actor, plan_id: int, reason: str) -> RolloutPlan:
    """Stop the controller from acting on the plan; traffic stays where it is."""
    return _status_change(
        actor,
        plan_id,
        reason,
        action="rollout_pause",
        allowed=(Status.RUNNING,),
        to=Status.PAUSED,
        event="paused",
    )


@transaction.atomic
def rollout_resume(*, actor: Actor, plan_id: int, reason: str) -> RolloutPlan:
    """Hand a paused plan back to the controller; the current step's bake starts again."""
    return _status_change(
        actor,
        plan_id,
        reason,
        action="rollout_resume",
        allowed=(Status.PAUSED,),
        to=Status.RUNNING,
        event="resumed",
    )


@transaction.atomic
def rollout_abort(*, actor: Actor, plan_id: int, reason: str) -> RolloutPlan:
    """End the plan and retire its challenger: the champion takes its traffic back, aliases follow."""
    rollout_permission_check(actor, "rollout_abort")
    reason = reason_required(reason)
    plan = plan_locked(plan_id)
    if not plan.is_active:
        raise GovernanceError(
            "conflict", f"Rollout plan {plan.pk} has already ended ({plan.status}).", status=409
        )
    before = plan_snapshot(plan)
    variant = Variant.objects.get(pk=plan.variant_id)
    if variant.role == Variant.Role.CHALLENGER:
        challenger_retire(
            actor=actor,
            endpoint_name=plan.endpoint.name,
            variant_name=variant.name,
            reason=f"rollout plan {plan.pk} aborted: {reason}",
        )
    plan.status, plan.finished_at, plan.outcome = Status.ABORTED, timezone.now(), reason
    plan_save(plan, "status", "finished_at", "outcome")
    plan_event(plan, RolloutEvent.Kind.ABORTED, actor, note=reason)
    plan_audit(actor, "rollout_aborted", plan, before, reason)
    return plan


@transaction.atomic
def rollout_approve(*, actor: Actor, plan_id: int, reason: str = "") -> RolloutPlan:
    """A second person approves the promotion a plan is waiting for (four-eyes: not its requester)."""
    rollout_permission_check(actor, "rollout_approve")
    plan = plan_locked(plan_id)
    if plan.status != Status.AWAITING_APPROVAL or plan.promotion_request_id is None:
        raise GovernanceError("conflict", f"Rollout plan {plan.pk} is not awaiting approval.", status=409)
    before = plan_snapshot(plan)
    promotion_approve(actor=actor, request_id=plan.promotion_request_id, reason=reason)
    why = (reason or "").strip() or "approved"
    plan.status, plan.finished_at, plan.outcome = Status.COMPLETED, timezone.now(), f"promoted: {why}"
    plan_save(plan, "status", "finished_at", "outcome")
    plan_event(plan, RolloutEvent.Kind.PROMOTED, actor, note=f"approved: {why}")
    plan_audit(actor, "rollout_approved", plan, before, why)
    return plan
