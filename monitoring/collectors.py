"""Gauges whose truth lives in the database, read at scrape time by whichever worker answers.

prometheus_client's multiprocess mode does not merge custom collectors across workers, and a
gauge set in one worker would go stale in the others; reading the database on each scrape gives
every worker the same answer. Only variants currently configured are exported, so retired
versions drop out and label cardinality stays bounded.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

from django.db.models import Max
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

logger = logging.getLogger(__name__)

VARIANT_LABELS = ["endpoint", "variant", "model_version"]

# Names as exposed, for the tests that check dashboards and alert rules against them.
COLLECTED_METRICS = {
    "controlplane_traffic_weight": "gauge",
    "controlplane_variant_info": "gauge",
    "controlplane_feature_drift_psi": "gauge",
    "controlplane_prediction_drift_psi": "gauge",
    "controlplane_drift_samples": "gauge",
    "controlplane_drift_reference_info": "gauge",
    "controlplane_drift_last_computed_timestamp_seconds": "gauge",
    "controlplane_database_collector_up": "gauge",
}


def _families() -> dict[str, GaugeMetricFamily]:
    return {
        "weight": GaugeMetricFamily(
            "controlplane_traffic_weight",
            "Share of the endpoint's traffic routed to the variant, 0..1 (shadows: 0).",
            labels=VARIANT_LABELS,
        ),
        "info": GaugeMetricFamily(
            "controlplane_variant_info",
            "1 for every configured serving variant; role is champion, challenger or shadow.",
            labels=[*VARIANT_LABELS, "role"],
        ),
        "feature_psi": GaugeMetricFamily(
            "controlplane_feature_drift_psi",
            "Population stability index of one input feature, from the latest compute_drift.",
            labels=[*VARIANT_LABELS, "feature"],
        ),
        "prediction_psi": GaugeMetricFamily(
            "controlplane_prediction_drift_psi",
            "Population stability index of the prediction, from the latest compute_drift.",
            labels=VARIANT_LABELS,
        ),
        "samples": GaugeMetricFamily(
            "controlplane_drift_samples",
            "Live predictions the latest drift computation compared.",
            labels=VARIANT_LABELS,
        ),
        "reference": GaugeMetricFamily(
            "controlplane_drift_reference_info",
            "1 with the kind of reference drift is measured against: training or live_bootstrap.",
            labels=[*VARIANT_LABELS, "reference_kind"],
        ),
        "computed": GaugeMetricFamily(
            "controlplane_drift_last_computed_timestamp_seconds",
            "Unix time of the latest drift computation for the variant.",
            labels=VARIANT_LABELS,
        ),
    }


def _serving_variants() -> list[tuple[str, str, str, str, float]]:
    """(endpoint, variant, model_version, role, share) of every active endpoint's serving variants."""
    from routing.models import Variant

    variants = Variant.objects.filter(endpoint__is_active=True, role__in=Variant.SERVING_ROLES).values_list(
        "endpoint__name", "name", "model_version__version", "role", "weight"
    )
    totals: dict[str, int] = {}
    for endpoint, _, _, role, weight in variants:
        if role in Variant.WEIGHTED_ROLES:
            totals[endpoint] = totals.get(endpoint, 0) + weight
    out = []
    for endpoint, name, version, role, weight in variants:
        total = totals.get(endpoint, 0)
        share = weight / total if total and role in Variant.WEIGHTED_ROLES else 0.0
        out.append((endpoint, name, str(version), role, share))
    return out


def _add_drift(families: dict[str, GaugeMetricFamily], serving: set[tuple[str, str, str]]) -> None:
    from monitoring.models import DriftResult

    latest = DriftResult.objects.values("endpoint", "variant", "model_version").annotate(
        at=Max("computed_at")
    )
    for group in latest:
        labels = [group["endpoint"], group["variant"], str(group["model_version"])]
        if tuple(labels) not in serving:
            continue
        rows = DriftResult.objects.filter(
            endpoint=group["endpoint"],
            variant=group["variant"],
            model_version=group["model_version"],
            computed_at=group["at"],
        )
        samples = 0
        for r in rows:
            samples = max(samples, r.n_live)
            if r.is_prediction:
                families["prediction_psi"].add_metric(labels, r.psi)
            else:
                families["feature_psi"].add_metric([*labels, r.feature], r.psi)
            kind = r.reference_kind
        families["samples"].add_metric(labels, samples)
        families["reference"].add_metric([*labels, kind], 1)
        families["computed"].add_metric(labels, group["at"].timestamp())


class DatabaseCollector(Collector):
    """Traffic shares, variant roles and the latest drift results, read from the database."""

    def describe(self) -> Iterator[GaugeMetricFamily]:
        # Registration must not query the database (it may not exist yet at app start).
        yield from _families().values()
        yield GaugeMetricFamily("controlplane_database_collector_up", "")

    def collect(self) -> Iterator[GaugeMetricFamily]:
        families = _families()
        up = 1.0
        try:
            serving = _serving_variants()
            for endpoint, variant, version, role, share in serving:
                families["weight"].add_metric([endpoint, variant, version], share)
                families["info"].add_metric([endpoint, variant, version, role], 1)
            _add_drift(families, {(e, v, m) for e, v, m, _, _ in serving})
        except Exception:  # a scrape must still return the process metrics when the DB is down
            logger.exception("reading traffic and drift for /metrics failed")
            families = _families()
            up = 0.0
        yield from families.values()
        yield GaugeMetricFamily(
            "controlplane_database_collector_up",
            "1 when the last scrape could read traffic and drift from the database.",
            value=up,
        )


DATABASE_COLLECTOR = DatabaseCollector()
