"""Reads behind experiments: baselines, traffic, per-arm sufficient statistics, weight epochs.

Ground-truth metrics are averaged over labelled prediction rows (the unit is the row: requests
without a unit key are drawn independently by weight); outcome metrics over units (unit-key
hashes answered in the window), a unit with no outcome counting 0, its outcomes summed (or, for
a 0/1 metric, "any"). Arms are the variants that served, as the prediction log and the feedback
record them.
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any

import numpy as np
from django.conf import settings
from django.db.models import Count, Q
from django.utils import timezone

from experiments.models import Experiment, Feedback
from experiments.quality_metrics import GROUND_TRUTH_METRICS, OUTCOME_PREFIX, score
from experiments.statistics import ArmStats, WeightEpoch
from monitoring.selectors import latest_psi
from registry.models import AuditEvent
from routing.models import Endpoint, PredictionLog, Variant

MIN_BASELINE_ITEMS = 30


def weights_now(endpoint: Endpoint) -> dict[str, int]:
    """Champion and challengers' weights now."""
    return dict(endpoint.variants.filter(role__in=Variant.WEIGHTED_ROLES).values_list("name", "weight"))


def _truth_values(
    endpoint: str, variants: list[str], metric: str, since: datetime, until: datetime
) -> dict[str, list[float]]:
    rows = Feedback.objects.filter(
        endpoint=endpoint,
        kind=Feedback.Kind.GROUND_TRUTH,
        variant__in=variants,
        predicted_at__gte=since,
        predicted_at__lte=until,
    ).values_list("variant", "prediction", "label", "value")
    out: dict[str, list[float]] = defaultdict(list)
    for variant, prediction, label, value in rows.iterator(chunk_size=5000):
        x = score(prediction, label, value).value_of(metric)
        if x is not None:
            out[variant].append(x)
    return out


def unit_outcomes(
    endpoint: str, variants: list[str], metric: str, binary: bool, since: datetime, until: datetime
) -> dict[str, list[float]]:
    """Per arm: one value per unit answered in the window (0 when it sent no outcome)."""
    units = (
        PredictionLog.objects.filter(
            endpoint=endpoint,
            is_shadow=False,
            variant__in=variants,
            created_at__gte=since,
            created_at__lte=until,
        )
        .exclude(unit_key_hash="")
        .order_by()
    )
    per_unit: dict[tuple[str, str], float] = {
        (v, h): 0.0 for v, h in units.values_list("variant", "unit_key_hash").distinct()
    }
    events = Feedback.objects.filter(
        endpoint=endpoint,
        kind=Feedback.Kind.OUTCOME,
        metric=metric,
        variant__in=variants,
        predicted_at__gte=since,
    ).values_list("variant", "unit_key_hash", "value")
    for variant, key, value in events.iterator(chunk_size=5000):
        if (variant, key) in per_unit:
            per_unit[(variant, key)] = (
                max(per_unit[(variant, key)], value) if binary else per_unit[(variant, key)] + value
            )
    out: dict[str, list[float]] = defaultdict(list)
    for (variant, _), value in per_unit.items():
        out[variant].append(value)
    return out


def _values(experiment: Experiment, metric: str, since: datetime, until: datetime) -> dict[str, list[float]]:
    if metric in GROUND_TRUTH_METRICS:
        return _truth_values(experiment.endpoint.name, experiment.arms, metric, since, until)
    name = metric.removeprefix(OUTCOME_PREFIX)
    declared = experiment.endpoint.outcome_metrics.filter(name=name).values_list("kind", flat=True).first()
    return unit_outcomes(experiment.endpoint.name, experiment.arms, name, declared == "binary", since, until)


def arm_stats(experiment: Experiment, since: datetime, until: datetime) -> list[ArmStats]:
    """Sufficient statistics (units, sum, sum of squares) of the primary metric per arm."""
    values = _values(experiment, experiment.primary_metric, since, until)
    return [
        ArmStats(
            name=arm,
            count=len(values.get(arm, [])),
            total=float(sum(values.get(arm, []))),
            total_squares=float(sum(x * x for x in values.get(arm, []))),
        )
        for arm in experiment.arms
    ]


def guardrail_values(
    experiment: Experiment, metric: str, since: datetime, until: datetime
) -> dict[str, float]:
    """Per arm: a guardrail's value over the window (arms without data are left out)."""
    endpoint = experiment.endpoint.name
    rows = PredictionLog.objects.filter(
        endpoint=endpoint, is_shadow=False, created_at__gte=since, created_at__lte=until
    )
    out: dict[str, float] = {}
    if metric == "fallback_rate":
        for arm in experiment.arms:
            assigned = rows.filter(Q(fallback_from=arm) | Q(variant=arm, fallback_from="")).count()
            if assigned:
                out[arm] = rows.filter(fallback_from=arm).count() / assigned
    elif metric == "latency_p99_ms":
        for arm in experiment.arms:
            latencies = list(rows.filter(variant=arm).values_list("latency_ms", flat=True)[:100_000])
            if latencies:
                out[arm] = float(np.percentile(latencies, 99))
    else:
        for arm, values in _values(experiment, metric, since, until).items():
            if values:
                out[arm] = sum(values) / len(values)
    return out


def drift_values(experiment: Experiment, metric: str) -> dict[str, float]:
    """Per arm: ``prediction_psi`` or ``feature_psi_max`` of its latest drift computation for the
    model version it serves now (arms without one are left out), from monitoring."""
    versions = dict(
        Variant.objects.filter(endpoint=experiment.endpoint, name__in=experiment.arms).values_list(
            "name", "model_version__version"
        )
    )
    out: dict[str, float] = {}
    for arm in experiment.arms:
        latest = latest_psi(experiment.endpoint.name, arm, model_version=versions.get(arm))
        if latest and metric in latest:
            out[arm] = latest[metric]
    return out


def _weights_after(event: AuditEvent) -> dict[str, int] | None:
    variants = (event.after or {}).get("variants") if isinstance(event.after, dict) else None
    if not isinstance(variants, dict):
        return None
    return {
        name: int(v.get("weight", 0))
        for name, v in variants.items()
        if isinstance(v, dict) and v.get("role") in Variant.WEIGHTED_ROLES
    }


def weight_changes(
    experiment: Experiment, since: datetime, until: datetime
) -> list[tuple[datetime, dict[str, int]]]:
    """(from when, weights) for each weight epoch of the window, from the audit trail."""
    start = AuditEvent.objects.filter(
        action="experiments.start", object_type="experiment", object_id=str(experiment.pk)
    ).first()
    initial = (start.after or {}).get("weights") if start else None
    epochs: list[tuple[datetime, dict[str, int]]] = [
        (since, dict(initial or weights_now(experiment.endpoint)))
    ]
    changes = AuditEvent.objects.filter(
        object_type="endpoint",
        object_id=str(experiment.endpoint_id),
        created_at__gt=since,
        created_at__lte=until,
    ).order_by("created_at", "id")
    for event in changes:
        weights = _weights_after(event)
        if weights is not None and weights != epochs[-1][1]:
            epochs.append((event.created_at, weights))
    return epochs


def weight_epochs(experiment: Experiment, since: datetime, until: datetime) -> list[WeightEpoch]:
    """Units assigned to each variant under each set of weights: the SRM check's input.

    A request answered by the champion because the challenger failed counts for the challenger
    (``fallback_from``): that is where the weights sent it. Units are distinct unit keys, or
    requests when there is no key.
    """
    changes = weight_changes(experiment, since, until)
    out = []
    for i, (start, weights) in enumerate(changes):
        end = changes[i + 1][0] if i + 1 < len(changes) else until
        rows = PredictionLog.objects.filter(
            endpoint=experiment.endpoint.name, is_shadow=False, created_at__gte=start, created_at__lt=end
        ).order_by()  # no default ordering in the GROUP BY
        units: dict[str, int] = defaultdict(int)
        for assigned, served, keyless, keyed in (
            rows.values_list("fallback_from", "variant")
            .annotate(
                keyless=Count("id", filter=Q(unit_key_hash="")),
                keyed=Count("unit_key_hash", distinct=True, filter=~Q(unit_key_hash="")),
            )
            .values_list("fallback_from", "variant", "keyless", "keyed")
        ):
            units[assigned or served] += keyless + keyed
        out.append(WeightEpoch(units=dict(units), weights={k: float(v) for k, v in weights.items()}))
    return out


def baseline(
    endpoint: Endpoint, champion: str, metric: str, mean: float | None, variance: float | None
) -> tuple[float, float | None] | None:
    """The champion's mean (and variance) of ``metric``: as given, from recent feedback, or, for
    accuracy, from the version's logged ``val_accuracy``; None when nothing gives it."""
    if mean is not None:
        return float(mean), None if variance is None else float(variance)
    since = timezone.now() - timedelta(days=settings.QUALITY_WINDOW_DAYS)
    fake = Experiment(endpoint=endpoint, champion=champion, challengers=[], primary_metric=metric)
    values = _values(fake, metric, since, timezone.now()).get(champion, [])
    if len(values) >= MIN_BASELINE_ITEMS:
        return statistics.fmean(values), statistics.variance(values)
    if metric == "accuracy":
        run_metrics: dict[str, Any] = (
            endpoint.variants.filter(name=champion).values_list("model_version__metrics", flat=True).first()
            or {}
        )
        accuracy = run_metrics.get("val_accuracy")
        if isinstance(accuracy, (int, float)) and math.isfinite(accuracy) and 0 < accuracy < 1:
            return float(accuracy), None
    return None


def units_per_day(endpoint: str, metric: str) -> float:
    """Units the primary metric gained over the last day: labelled rows, else predictions answered."""
    since = timezone.now() - timedelta(days=1)
    if metric in GROUND_TRUTH_METRICS:
        labelled = Feedback.objects.filter(
            endpoint=endpoint, kind=Feedback.Kind.GROUND_TRUTH, received_at__gte=since
        ).count()
        if labelled:
            return float(labelled)
    rows = PredictionLog.objects.filter(endpoint=endpoint, is_shadow=False, created_at__gte=since)
    keyed = rows.exclude(unit_key_hash="").order_by().values("unit_key_hash").distinct().count()
    return float(keyed + rows.filter(unit_key_hash="").count())
