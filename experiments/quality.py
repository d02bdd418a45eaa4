"""Per-variant quality from feedback: ``quality_compute`` rewrites ``VariantQuality``.

For each endpoint, variant and model version, over feedback received in the last
``QUALITY_WINDOW_DAYS``: accuracy (and log loss / AUC when the model answered probabilities)
for labels, MAE and RMSE for values, the mean of every declared outcome, each with its count
and the median label delay (prediction to feedback). Run by the Celery beat task
``experiments.compute_quality`` and by ``manage.py compute_quality``.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Avg, Count, Q
from django.utils import timezone

from experiments.models import Feedback, VariantQuality
from experiments.quality_metrics import OUTCOME_PREFIX, ItemScore, aggregate, score

Group = tuple[str, str, int]


def _ground_truth(
    since, endpoint: str | None
) -> tuple[dict[Group, list[ItemScore]], dict[Group, list[float]]]:
    rows = Feedback.objects.filter(kind=Feedback.Kind.GROUND_TRUTH, received_at__gte=since)
    if endpoint:
        rows = rows.filter(endpoint=endpoint)
    scores: dict[Group, list[ItemScore]] = defaultdict(list)
    delays: dict[Group, list[float]] = defaultdict(list)
    fields = (
        "endpoint",
        "variant",
        "model_version",
        "prediction",
        "label",
        "value",
        "predicted_at",
        "received_at",
    )
    for ep, variant, version, prediction, label, value, predicted_at, received_at in rows.values_list(
        *fields
    ).iterator(chunk_size=5000):
        group = (ep, variant, version)
        scores[group].append(score(prediction, label, value))
        delays[group].append((received_at - predicted_at).total_seconds())
    return scores, delays


def _outcomes(since, endpoint: str | None) -> list[dict]:
    rows = Feedback.objects.filter(kind=Feedback.Kind.OUTCOME, received_at__gte=since)
    if endpoint:
        rows = rows.filter(endpoint=endpoint)
    return list(
        rows.order_by()
        .values("endpoint", "variant", "model_version", "metric")
        .annotate(mean=Avg("value"), n=Count("id"))
    )


@transaction.atomic
def quality_compute(*, endpoint: str | None = None) -> int:
    """Recompute every variant's quality (or one endpoint's); the number of rows written."""
    now = timezone.now()
    since = now - timedelta(days=settings.QUALITY_WINDOW_DAYS)
    scores, delays = _ground_truth(since, endpoint)
    values: dict[tuple[str, str, int, str], tuple[float | None, int, float | None]] = {}
    for group, items in scores.items():
        delay = statistics.median(delays[group]) if delays[group] else None
        for metric, (value, n) in aggregate(items).items():
            values[(*group, metric)] = (value, n, delay)
    for row in _outcomes(since, endpoint):
        key = (row["endpoint"], row["variant"], row["model_version"], OUTCOME_PREFIX + row["metric"])
        values[key] = (row["mean"], row["n"], None)
    stale = (
        VariantQuality.objects.all() if endpoint is None else VariantQuality.objects.filter(endpoint=endpoint)
    )
    # Variants with no feedback in the window any more are dropped, not left frozen.
    keep = Q(pk__in=[])
    for ep, variant, version, metric in values:
        keep |= Q(endpoint=ep, variant=variant, model_version=version, metric=metric)
    if values:
        stale.exclude(keep).delete()
    else:
        stale.delete()
    for (ep, variant, version, metric), (value, n, delay) in values.items():
        VariantQuality.objects.update_or_create(
            endpoint=ep,
            variant=variant,
            model_version=version,
            metric=metric,
            defaults={"value": value, "count": n, "label_delay_seconds": delay, "computed_at": now},
        )
    return len(values)


QUALITY_TAG_PREFIX = "controlplane.quality."


def _tag_key(metric: str) -> str:
    return QUALITY_TAG_PREFIX + metric.replace(":", ".")


def quality_tags_publish() -> int:
    """Write each served version's live quality to MLflow as model-version tags; returns tags written.

    ``controlplane.quality.<metric>`` (``accuracy``, ``mae``, ``outcome.<name>``...) holds the value
    with 4 decimals, as ``endpoint=value`` pairs when several endpoints serve the version, beside
    the production facts monitoring writes (role, traffic share, drift). Only changed tags are
    written (the registry mirror knows what MLflow has); MLflow is called outside any
    transaction, and a version MLflow refuses now is tried again on the next run.
    """
    import logging

    from registry import mlflow_client
    from registry.services import version_tags_write
    from routing.models import Variant

    served = {
        (v.endpoint.name, v.name, v.model_version.version): v.model_version
        for v in Variant.objects.filter(
            endpoint__is_active=True, role__in=Variant.SERVING_ROLES
        ).select_related("endpoint", "model_version__registered_model")
    }
    wanted: dict[int, dict[str, list[tuple[str, str]]]] = defaultdict(lambda: defaultdict(list))
    versions = {}
    for row in VariantQuality.objects.exclude(value=None).order_by("endpoint"):
        version = served.get((row.endpoint, row.variant, row.model_version))
        if version is None:
            continue
        versions[version.pk] = version
        wanted[version.pk][_tag_key(row.metric)].append((row.endpoint, f"{row.value:.4f}"))
    written = 0
    for pk, tags in wanted.items():
        flat = {
            key: pairs[0][1] if len(pairs) == 1 else ",".join(f"{e}={v}" for e, v in pairs)
            for key, pairs in tags.items()
        }
        try:
            written += version_tags_write(versions[pk], flat)
        except mlflow_client.MlflowUnavailable as exc:
            logging.getLogger(__name__).warning("live quality of %s not written: %s", versions[pk], exc)
    return written
