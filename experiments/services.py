"""Experiment changes and looks: create (with its plan), start, stop, declare outcome metrics, analyse.

Every change is permission-checked (``experiments.run_experiment``; a string actor is the
system), runs in one transaction with the experiment row locked, and writes its audit row
(``experiments.<verb>``) in that transaction. A look (``experiment_analyze``) aggregates the
feedback and the prediction log into sufficient statistics (``experiments.selectors``), calls
the pure ``analyze_experiment`` with the previous look's sequential state, and stores the result.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from typing import Any

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db import IntegrityError, transaction
from django.utils import timezone

from experiments import selectors
from experiments.analysis import analyze_experiment, sequential_states
from experiments.models import Experiment, ExperimentLook, MetricKind, OutcomeMetric
from experiments.quality_metrics import (
    GROUND_TRUTH_DIRECTION,
    GROUND_TRUTH_KIND,
    GROUND_TRUTH_METRICS,
    OUTCOME_PREFIX,
)
from experiments.statistics import (
    ExperimentDesign,
    SampleSizePlan,
    guardrail_check,
    guardrail_not_yet,
    sample_size_plan,
)
from registry.audit import audit_record
from routing.governance.errors import GovernanceError
from routing.models import Endpoint, Variant

logger = logging.getLogger(__name__)
Actor = AbstractBaseUser | AnonymousUser | str
PERMISSION = "experiments.run_experiment"
GUARDRAIL_METRICS = ("fallback_rate", "latency_p99_ms", "prediction_psi", "feature_psi_max")
DRIFT_GUARDRAILS = ("prediction_psi", "feature_psi_max")  # from monitoring's latest DriftResult


def _permission_check(actor: Actor) -> None:
    if isinstance(actor, str):
        return
    if not actor.is_authenticated or not actor.is_active or not actor.has_perm(PERMISSION):
        who = getattr(actor, "get_username", lambda: "anonymous")() or "anonymous"
        raise GovernanceError("forbidden", f"{who} lacks the permission {PERMISSION!r}.", status=403)


def _reason(reason: str) -> str:
    if not (reason or "").strip():
        raise GovernanceError("reason_required", "A reason is required for this change.")
    return reason.strip()


def _audit(actor: Actor, action: str, experiment: Experiment, before: Any, reason: str, **after: Any) -> None:
    audit_record(
        actor=actor,
        action=f"experiments.{action}",
        object_type="experiment",
        object_id=experiment.pk,
        object_repr=f"{experiment.name} on {experiment.endpoint.name}",
        before=before,
        after={"status": experiment.status, **after},
        reason=reason,
    )


def _actor_name(actor: Actor) -> str:
    return actor if isinstance(actor, str) else (actor.get_username() or "anonymous")


@transaction.atomic
def outcome_metric_declare(
    *,
    actor: Actor,
    endpoint_name: str,
    name: str,
    kind: str = "continuous",
    direction: str = "higher_is_better",
) -> OutcomeMetric:
    """Declare an outcome metric ``/feedback`` accepts for the endpoint (audited, idempotent)."""
    _permission_check(actor)
    endpoint = _endpoint(endpoint_name)
    if kind not in MetricKind.values:
        raise GovernanceError("invalid", f"kind must be one of {', '.join(MetricKind.values)}.")
    if direction not in ("higher_is_better", "lower_is_better"):
        raise GovernanceError("invalid", "direction must be higher_is_better or lower_is_better.")
    metric, created = OutcomeMetric.objects.update_or_create(
        endpoint=endpoint, name=name, defaults={"kind": kind, "direction": direction}
    )
    audit_record(
        actor=actor,
        action="experiments.outcome_metric_declare",
        object_type="endpoint",
        object_id=endpoint.pk,
        object_repr=endpoint.name,
        after={"metric": name, "kind": kind, "direction": direction, "created": created},
    )
    return metric


def _endpoint(name: str) -> Endpoint:
    endpoint = Endpoint.objects.filter(name=str(name)).first()
    if endpoint is None:
        raise GovernanceError("not_found", f"There is no endpoint named {name!r}.", status=404)
    return endpoint


def _metric_kind_direction(endpoint: Endpoint, metric: str) -> tuple[str, str]:
    if metric in GROUND_TRUTH_METRICS:
        return GROUND_TRUTH_KIND[metric], GROUND_TRUTH_DIRECTION[metric]
    if metric.startswith(OUTCOME_PREFIX):
        declared = endpoint.outcome_metrics.filter(name=metric.removeprefix(OUTCOME_PREFIX)).first()
        if declared is not None:
            return declared.kind, declared.direction
    choices = ", ".join(
        [*GROUND_TRUTH_METRICS, *(OUTCOME_PREFIX + m.name for m in endpoint.outcome_metrics.all())]
    )
    raise GovernanceError("invalid", f"primary_metric {metric!r} is not one of: {choices}.")


def _arms(endpoint: Endpoint, challengers: list[str] | None) -> tuple[str, list[str], dict[str, int]]:
    weighted = {v.name: v for v in endpoint.variants.filter(role__in=Variant.WEIGHTED_ROLES)}
    champion = next((n for n, v in weighted.items() if v.role == Variant.Role.CHAMPION), None)
    if champion is None:
        raise GovernanceError("no_champion", f"Endpoint {endpoint.name!r} has no champion.")
    if challengers is None:
        challengers = sorted(n for n, v in weighted.items() if v.role == Variant.Role.CHALLENGER)
    unknown = [c for c in challengers if c not in weighted or c == champion]
    if unknown or not challengers:
        raise GovernanceError(
            "invalid",
            f"challengers must name the endpoint's challenger variants; refused: {unknown or 'none given'}.",
        )
    return champion, list(challengers), {n: v.weight for n, v in weighted.items()}


def _guardrails(endpoint: Endpoint, guardrails: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for g in guardrails or []:
        metric = str(g.get("metric", ""))
        outcome = metric.startswith(OUTCOME_PREFIX) and endpoint.outcome_metrics.filter(
            name=metric.removeprefix(OUTCOME_PREFIX)
        )
        if metric not in GUARDRAIL_METRICS and not outcome:
            raise GovernanceError(
                "invalid",
                f"guardrail {metric!r} is not one of {', '.join(GUARDRAIL_METRICS)} or a declared outcome.",
            )
        try:
            tolerance = float(g.get("tolerance", 0))
        except (TypeError, ValueError):
            raise GovernanceError("invalid", f"guardrail {metric!r}: tolerance must be a number.") from None
        if not math.isfinite(tolerance) or tolerance < 0:
            raise GovernanceError("invalid", f"guardrail {metric!r}: tolerance must be >= 0.")
        declared = {"metric": metric, "tolerance": tolerance, "relative": bool(g.get("relative", False))}
        if g.get("max") is not None:
            declared["max"] = _bound(metric, g["max"])
        out.append(declared)
    return out


def _bound(metric: str, value: Any) -> float:
    """A guardrail's absolute bound (``max``): a finite number >= 0."""
    try:
        bound = float(value)
    except (TypeError, ValueError):
        raise GovernanceError("invalid", f"guardrail {metric!r}: max must be a number.") from None
    if isinstance(value, bool) or not math.isfinite(bound) or bound < 0:
        raise GovernanceError("invalid", f"guardrail {metric!r}: max must be a finite number >= 0.")
    return bound


@transaction.atomic
def experiment_create(
    *,
    actor: Actor,
    endpoint_name: str,
    name: str,
    primary_metric: str,
    minimum_effect: float,
    challengers: list[str] | None = None,
    minimum_effect_relative: bool = False,
    guardrails: list[dict[str, Any]] | None = None,
    alpha: float = 0.05,
    power: float = 0.8,
    baseline_mean: float | None = None,
    baseline_variance: float | None = None,
    reason: str = "",
) -> Experiment:
    """A draft experiment with its sample-size plan at the endpoint's current traffic (audited)."""
    _permission_check(actor)
    reason = _reason(reason)
    endpoint = _endpoint(endpoint_name)
    champion, challengers, weights = _arms(endpoint, challengers)
    kind, direction = _metric_kind_direction(endpoint, primary_metric)
    try:
        design = ExperimentDesign(
            champion=champion,
            challengers=tuple(challengers),
            metric_kind=kind,
            direction=direction,
            minimum_effect=float(minimum_effect),
            minimum_effect_relative=bool(minimum_effect_relative),
            alpha=float(alpha),
            power=float(power),
        )
        baseline = selectors.baseline(endpoint, champion, primary_metric, baseline_mean, baseline_variance)
        if baseline is None:
            raise GovernanceError(
                "baseline_required",
                f"No feedback or run metric gives the champion's {primary_metric}; give baseline_mean.",
            )
        per_day = selectors.units_per_day(endpoint.name, primary_metric)
        plan = sample_size_plan(
            design=design,
            baseline_mean=baseline[0],
            baseline_variance=baseline[1],
            shares={a: weights.get(a, 0) for a in design.arms},
            units_per_day=per_day or None,
        )
    except (ValueError, ArithmeticError) as exc:  # the statistics core's refusal of this design
        raise GovernanceError("invalid", str(exc) or "these design values cannot be planned") from None
    experiment = Experiment.objects.create(
        endpoint=endpoint,
        name=str(name)[:100] or f"{endpoint.name} experiment",
        champion=champion,
        challengers=challengers,
        primary_metric=primary_metric,
        metric_kind=kind,
        direction=direction,
        guardrails=_guardrails(endpoint, guardrails or []),
        alpha=design.alpha,
        power=design.power,
        minimum_effect=design.minimum_effect,
        minimum_effect_relative=design.minimum_effect_relative,
        baseline_mean=baseline[0],
        baseline_variance=baseline[1],
        plan=json_safe(dataclasses.asdict(plan)),
        created_by=_actor_name(actor),
    )
    _audit(actor, "create", experiment, None, reason, plan=experiment.plan, arms=experiment.arms)
    return experiment


def _locked(experiment_id: int) -> Experiment:
    experiment = (
        Experiment.objects.select_for_update().select_related("endpoint").filter(pk=experiment_id).first()
    )
    if experiment is None:
        raise GovernanceError("not_found", f"There is no experiment {experiment_id}.", status=404)
    return experiment


@transaction.atomic
def experiment_start(*, actor: Actor, experiment_id: int, reason: str) -> Experiment:
    """Draft -> running; the weights in force are recorded on its timeline (one running per endpoint)."""
    _permission_check(actor)
    reason = _reason(reason)
    experiment = _locked(experiment_id)
    if experiment.status != Experiment.Status.DRAFT:
        raise GovernanceError(
            "conflict", f"Experiment {experiment.name!r} is {experiment.status}.", status=409
        )
    experiment.status, experiment.started_at = Experiment.Status.RUNNING, timezone.now()
    try:
        with transaction.atomic():
            experiment.save(update_fields=["status", "started_at"])
    except IntegrityError:
        raise GovernanceError(
            "conflict", f"Endpoint {experiment.endpoint.name!r} already runs an experiment.", status=409
        ) from None
    _audit(
        actor,
        "start",
        experiment,
        {"status": "draft"},
        reason,
        weights=selectors.weights_now(experiment.endpoint),
    )
    return experiment


@transaction.atomic
def experiment_stop(*, actor: Actor, experiment_id: int, reason: str) -> Experiment:
    """Running -> stopped, after one last look (audited)."""
    _permission_check(actor)
    reason = _reason(reason)
    experiment = _locked(experiment_id)
    if experiment.status != Experiment.Status.RUNNING:
        raise GovernanceError(
            "conflict", f"Experiment {experiment.name!r} is {experiment.status}.", status=409
        )
    look = _analyze(experiment, timezone.now())
    experiment.status, experiment.stopped_at = Experiment.Status.STOPPED, look.computed_at
    experiment.save(update_fields=["status", "stopped_at"])
    _audit(actor, "stop", experiment, {"status": "running"}, reason, outcomes=look.outcomes)
    return experiment


@transaction.atomic
def experiment_analyze(*, experiment_id: int, actor: Actor = "system") -> ExperimentLook:
    """One look at a running experiment, stored (the periodic task, the command, "analyse now")."""
    _permission_check(actor)
    experiment = _locked(experiment_id)
    if experiment.status != Experiment.Status.RUNNING:
        raise GovernanceError("conflict", f"Experiment {experiment.name!r} is not running.", status=409)
    return _analyze(experiment, timezone.now())


def experiments_analyze_running(*, endpoint_name: str | None = None) -> list[ExperimentLook]:
    """A look at every running experiment (or one endpoint's), each in its own transaction."""
    running = Experiment.objects.filter(status=Experiment.Status.RUNNING)
    if endpoint_name:
        running = running.filter(endpoint__name=endpoint_name)
    looks = []
    for pk in running.values_list("pk", flat=True):
        try:
            looks.append(experiment_analyze(experiment_id=pk))
        except (ValueError, ArithmeticError, GovernanceError):  # one bad experiment must not stop the others
            logger.exception("analysis of experiment %s failed", pk)
    return looks


def _analyze(experiment: Experiment, now: Any) -> ExperimentLook:
    started = experiment.started_at or now
    design = ExperimentDesign(
        champion=experiment.champion,
        challengers=tuple(experiment.challengers),
        metric_kind=experiment.metric_kind,
        direction=experiment.direction,
        minimum_effect=experiment.minimum_effect,
        minimum_effect_relative=experiment.minimum_effect_relative,
        alpha=experiment.alpha,
        power=experiment.power,
    )
    plan = SampleSizePlan(**experiment.plan)
    arms = selectors.arm_stats(experiment, started, now)
    epochs = selectors.weight_epochs(experiment, started, now)
    previous_look = experiment.looks.order_by("-computed_at", "-id").first()
    previous = sequential_states(previous_look.snapshot) if previous_look else None
    result = analyze_experiment(
        design=design,
        plan=plan,
        arms=arms,
        srm_epochs=epochs,
        previous=previous,
        guardrails=_guardrail_results(experiment, started, now),
    )
    snapshot = json_safe(dataclasses.asdict(result))
    return ExperimentLook.objects.create(
        experiment=experiment,
        computed_at=now,
        snapshot=snapshot,
        srm_flagged=result.srm.flagged,
        outcomes={c.challenger: c.verdict.outcome for c in result.comparisons},
    )


def _guardrail_results(experiment: Experiment, started: Any, now: Any) -> dict[str, list]:
    out: dict[str, list] = {c: [] for c in experiment.challengers}
    for g in experiment.guardrails:
        if g["metric"] in DRIFT_GUARDRAILS:
            values = selectors.drift_values(experiment, g["metric"])
        else:
            values = selectors.guardrail_values(experiment, g["metric"], started, now)
        champion = values.get(experiment.champion)
        for challenger in experiment.challengers:
            ours = values.get(challenger)
            if champion is None or ours is None:
                if g["metric"] in DRIFT_GUARDRAILS:  # drift is computed on a schedule: say "not yet"
                    missing = [
                        arm for arm, v in ((challenger, ours), (experiment.champion, champion)) if v is None
                    ]
                    out[challenger].append(
                        guardrail_not_yet(
                            metric=g["metric"],
                            tolerance=g["tolerance"],
                            relative=g["relative"],
                            bound=g.get("max"),
                            missing=f"no drift computed for {' and '.join(missing)}",
                        )
                    )
                continue
            direction = "lower_is_better"
            if g["metric"].startswith(OUTCOME_PREFIX):
                declared = experiment.endpoint.outcome_metrics.filter(
                    name=g["metric"].removeprefix(OUTCOME_PREFIX)
                )
                direction = declared.values_list("direction", flat=True).first() or "higher_is_better"
            out[challenger].append(
                guardrail_check(
                    metric=g["metric"],
                    champion=champion,
                    challenger=ours,
                    tolerance=g["tolerance"],
                    relative=g["relative"],
                    direction=direction,
                    bound=g.get("max"),
                )
            )
    return out


def json_safe(value: Any) -> Any:
    """Tuples as lists and non-finite floats as None: strict JSON every backend stores."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value
