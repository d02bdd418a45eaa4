"""Bandit mode: start and stop it (people), and one controller tick per active policy.

The hot path stays a weight lookup: the controller reads each arm's outcomes, asks
``experiments.bandit`` for Thompson-sampling weights (floor per arm, capped moves) and writes them
through ``traffic_split_set`` as the actor ``bandit``, one compact audit row per applied change.
Sticky units keep their arm unless its weight drops (routing's sticky assignment). The claim per
tick is the rollout plans' (``revision``, after the endpoint lock), so any number of controllers
apply one change per tick.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import numpy as np
from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from delivery.models import BanditPolicy, RolloutPlan
from delivery.permissions import rollout_permission_check
from experiments.bandit import BanditConfig, bandit_weights
from experiments.models import OutcomeMetric
from experiments.selectors import unit_outcomes
from experiments.statistics import ArmStats
from registry.audit import audit_record
from routing.governance.errors import GovernanceError
from routing.governance.permissions import Actor
from routing.governance.rules import endpoint_locked, int_in_range, reason_required
from routing.governance.services import traffic_split_set
from routing.models import Variant

BANDIT_ACTOR = "bandit"


def _audit(actor: Actor, action: str, policy: BanditPolicy, reason: str) -> None:
    audit_record(
        actor=actor,
        action=f"delivery.{action}",
        object_type="bandit_policy",
        object_id=policy.pk,
        object_repr=f"{policy.endpoint.name}: bandit on {policy.metric}",
        after={
            "metric": policy.metric,
            "floor": policy.floor,
            "max_step": policy.max_step,
            "active": policy.is_active,
        },
        reason=reason,
    )


@transaction.atomic
def bandit_start(
    *,
    actor: Actor,
    endpoint_name: str,
    metric: str,
    reason: str,
    floor: int = 5,
    max_step: int = 10,
    min_outcomes: int = 30,
) -> BanditPolicy:
    """Put an endpoint in bandit mode over its champion and challengers on outcome ``metric``."""
    rollout_permission_check(actor, "bandit_start")
    reason = reason_required(reason)
    endpoint = endpoint_locked(endpoint_name)
    declared = OutcomeMetric.objects.filter(endpoint=endpoint, name=str(metric)).first()
    if declared is None:
        raise GovernanceError("invalid", f"{metric!r} is not a declared outcome metric of {endpoint.name!r}.")
    floor, max_step = int_in_range(floor, "floor", 0, 50), int_in_range(max_step, "max_step", 1, 100)
    min_outcomes = int_in_range(min_outcomes, "min_outcomes", 2, 10_000_000)
    arms = endpoint.variants.filter(role__in=Variant.WEIGHTED_ROLES).count()
    if arms < 2:
        raise GovernanceError("invalid", "A bandit needs a champion and at least one challenger.")
    if floor * arms > 100:
        raise GovernanceError("invalid", f"A floor of {floor} % for {arms} arms exceeds 100 %.")
    if endpoint.bandit_policies.filter(is_active=True).exists():
        raise GovernanceError(
            "conflict", f"Endpoint {endpoint.name!r} is already in bandit mode.", status=409
        )
    if endpoint.rollout_plans.filter(status__in=RolloutPlan.ACTIVE).exists():
        raise GovernanceError(
            "conflict", f"Endpoint {endpoint.name!r} has an active rollout plan; end it first.", status=409
        )
    policy = BanditPolicy.objects.create(
        endpoint=endpoint,
        metric=declared.name,
        metric_kind=declared.kind,
        direction=declared.direction,
        floor=floor,
        max_step=max_step,
        min_outcomes=min_outcomes,
        started_by=actor if isinstance(actor, str) else actor.get_username(),
        started_at=timezone.now(),
    )
    _audit(actor, "bandit_started", policy, reason)
    return policy


@transaction.atomic
def bandit_stop(*, actor: Actor, endpoint_name: str, reason: str) -> BanditPolicy:
    """Leave bandit mode: the weights stay where the bandit left them."""
    rollout_permission_check(actor, "bandit_stop")
    reason = reason_required(reason)
    endpoint = endpoint_locked(endpoint_name)
    policy = endpoint.bandit_policies.select_for_update().filter(is_active=True).first()
    if policy is None:
        raise GovernanceError("conflict", f"Endpoint {endpoint.name!r} is not in bandit mode.", status=409)
    policy.is_active, policy.stopped_at, policy.revision = False, timezone.now(), policy.revision + 1
    policy.save(update_fields=["is_active", "stopped_at", "revision"])
    _audit(actor, "bandit_stopped", policy, reason)
    return policy


def bandit_arms(policy: BanditPolicy, arms: list[str], now: datetime) -> list[ArmStats]:
    """Each arm's per-unit outcomes since the policy started, as sufficient statistics."""
    values = unit_outcomes(
        policy.endpoint.name, arms, policy.metric, policy.metric_kind == "binary", policy.started_at, now
    )
    return [
        ArmStats(
            name=a,
            count=len(values.get(a, [])),
            total=float(sum(values.get(a, []))),
            total_squares=float(sum(x * x for x in values.get(a, []))),
        )
        for a in arms
    ]


def observed_regret(stats: list[ArmStats], direction: str) -> float:
    """Outcome lost against the arm with the best observed mean (a live estimate: the true means are unknown)."""
    means = {a.name: a.total / a.count for a in stats if a.count}
    if not means:
        return 0.0
    best = max(means.values()) if direction == "higher_is_better" else min(means.values())
    return float(sum(a.count * abs(best - means[a.name]) for a in stats if a.count))


def _compact(
    current: dict[str, int], weights: dict[str, int], probs: dict[str, float], stats: list[ArmStats]
) -> str:
    moves = ", ".join(f"{n} {current[n]}->{weights[n]}" for n in sorted(weights))
    best = " ".join(f"{n} {probs[n]:.2f}" for n in sorted(probs))
    seen = ", ".join(f"{a.name} {a.count} (mean {a.total / a.count:.4g})" for a in stats if a.count)
    return f"bandit: {moves}; P(best) {best}; outcomes {seen}"


def bandit_tick(
    *, policy_id: int, now: datetime | None = None, rng: np.random.Generator | None = None
) -> str:
    """One controller tick of one bandit: ``changed``, ``unchanged``, ``warming_up``, or skipped."""
    now = now or timezone.now()
    policy = BanditPolicy.objects.select_related("endpoint").get(pk=policy_id)
    half = timedelta(seconds=settings.ROLLOUT_TICK_SECONDS / 2)
    if not policy.is_active or (policy.last_evaluated_at and now - policy.last_evaluated_at < half):
        return "not_due"
    current = dict(
        policy.endpoint.variants.filter(role__in=Variant.WEIGHTED_ROLES).values_list("name", "weight")
    )
    stats = bandit_arms(policy, sorted(current), now)
    config = BanditConfig(
        metric_kind=policy.metric_kind,  # type: ignore[arg-type]
        direction=policy.direction,  # type: ignore[arg-type]
        floor=policy.floor,
        max_step=policy.max_step,
        min_outcomes=policy.min_outcomes,
    )
    step = bandit_weights(
        arms=stats, current_weights=current, config=config, rng=rng or np.random.default_rng()
    )
    with transaction.atomic():
        endpoint_locked(policy.endpoint.name)
        won = BanditPolicy.objects.filter(pk=policy.pk, revision=policy.revision, is_active=True).update(
            revision=F("revision") + 1, last_evaluated_at=now
        )
        if not won:
            return "skipped"
        outcome = _apply(policy, current, step, stats)
    return outcome


def _apply(policy: BanditPolicy, current: dict[str, int], step: Any, stats: list[ArmStats]) -> str:
    evaluation = {
        "probability_best": step.probability_best,
        "target": step.target,
        "weights": step.weights,
        "outcomes": {a.name: a.count for a in stats},
        "means": {a.name: (a.total / a.count if a.count else None) for a in stats},
        "warming_up": step.warming_up,
    }
    fields = {"last_evaluation": evaluation, "regret": observed_regret(stats, policy.direction)}
    outcome = "warming_up" if step.warming_up else "unchanged"
    if not step.warming_up and step.weights != current:
        reason = _compact(current, step.weights, step.probability_best, stats)
        try:
            with transaction.atomic():
                traffic_split_set(
                    actor=BANDIT_ACTOR,
                    endpoint_name=policy.endpoint.name,
                    weights=step.weights,
                    reason=reason,
                )
        except GovernanceError as exc:  # e.g. a promotion gate on a takeover: the weights stay
            evaluation["refused"] = f"{exc.code}: {exc.message}"
            outcome = "refused"
        else:
            fields["changes"] = F("changes") + 1
            outcome = "changed"
    BanditPolicy.objects.filter(pk=policy.pk).update(**fields)
    return outcome


def bandit_controller_run(*, now: datetime | None = None) -> dict[str, int]:
    """One tick over every active bandit: outcome -> number of endpoints."""
    done: dict[str, int] = {}
    for policy_id in list(BanditPolicy.objects.filter(is_active=True).values_list("pk", flat=True)):
        outcome = bandit_tick(policy_id=policy_id, now=now)
        done[outcome] = done.get(outcome, 0) + 1
    return done
