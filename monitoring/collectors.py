"""Gauges whose truth lives in the database, read at scrape time by whichever worker answers.

prometheus_client's multiprocess mode does not merge custom collectors across workers, and a
gauge set in one worker would go stale in the others; reading the database on each scrape gives
every worker the same answer. Only variants currently configured are exported, so retired
versions drop out and label cardinality stays bounded.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

from django.db.models import Count, Max
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
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
    "controlplane_alias_pushes_open": "gauge",
    "controlplane_alias_push_oldest_age_seconds": "gauge",
    "controlplane_batch_jobs": "gauge",
    "controlplane_governance_events_total": "counter",
}


def _governance_family() -> CounterMetricFamily:
    return CounterMetricFamily(
        "controlplane_governance_events",
        "Governance changes of an endpoint (promotion, rollback, split, ...) from the append-only audit trail.",
        labels=["endpoint", "action"],
    )


def _governance_events(family: CounterMetricFamily) -> None:
    """Audit rows per endpoint and action: a true counter, since the audit table is append-only.

    Every worker and replica reads the same rows, so they all report the same value (dashboards
    take ``max``); only endpoints that exist are labelled, which keeps the label set bounded.
    """
    from registry.models import AuditEvent
    from routing.models import Endpoint

    names = set(Endpoint.objects.values_list("name", flat=True))
    rows = (
        AuditEvent.objects.filter(object_type="endpoint", object_repr__in=names)
        .values_list("object_repr", "action")
        .annotate(n=Count("id"))
        .order_by()
    )
    for endpoint, action, n in rows:
        family.add_metric([endpoint, action.removeprefix("routing.")], n)


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
        "pushes": GaugeMetricFamily(
            "controlplane_alias_pushes_open",
            "MLflow alias pushes (the alias outbox) not applied yet, by status: pending or failed.",
            labels=["status"],
        ),
        "push_age": GaugeMetricFamily(
            "controlplane_alias_push_oldest_age_seconds",
            "Age of the oldest alias push not applied yet (0 when MLflow has every change).",
        ),
        "batch_jobs": GaugeMetricFamily(
            "controlplane_batch_jobs",
            "Batch scoring jobs waiting or running, by status: queued or running.",
            labels=["status"],
        ),
    }


def _serving_variants() -> list[tuple[str, str, str, str, float]]:
    """(endpoint, variant, model_version, role, share) of every active endpoint's serving variants."""
    from routing.models import Variant, traffic_shares

    rows = Variant.objects.filter(endpoint__is_active=True, role__in=Variant.SERVING_ROLES).values_list(
        "endpoint__name", "name", "model_version__version", "role", "weight"
    )
    by_endpoint: dict[str, list[tuple[str, str, int, str, int]]] = {}
    for row in rows:
        by_endpoint.setdefault(row[0], []).append(row)
    out = []
    for endpoint, variants in by_endpoint.items():
        shares = traffic_shares((name, role, weight) for _, name, _, role, weight in variants)
        out.extend(
            (endpoint, name, str(version), role, shares[name]) for _, name, version, role, _ in variants
        )
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


def _add_background(families: dict[str, GaugeMetricFamily]) -> None:
    """The alias outbox and batch jobs: what waits on a worker (bounded labels: statuses only)."""
    from django.db.models import Count, Min
    from django.utils import timezone

    from routing.models import AliasPush, BatchJob

    open_pushes = AliasPush.objects.filter(status__in=AliasPush.OPEN)
    counts = dict(open_pushes.values_list("status").annotate(n=Count("id")))
    for status in AliasPush.OPEN:
        families["pushes"].add_metric([status], counts.get(status, 0))
    oldest = open_pushes.aggregate(at=Min("created_at"))["at"]
    families["push_age"].add_metric([], (timezone.now() - oldest).total_seconds() if oldest else 0.0)
    jobs = dict(
        BatchJob.objects.filter(status__in=[BatchJob.Status.QUEUED, BatchJob.Status.RUNNING])
        .values_list("status")
        .annotate(n=Count("id"))
    )
    for status in (BatchJob.Status.QUEUED, BatchJob.Status.RUNNING):
        families["batch_jobs"].add_metric([status], jobs.get(status, 0))


class DatabaseCollector(Collector):
    """Traffic shares, variant roles, the latest drift results, open alias pushes and batch jobs,
    read from the database."""

    def describe(self) -> Iterator[GaugeMetricFamily]:
        # Registration must not query the database (it may not exist yet at app start).
        yield from _families().values()
        yield _governance_family()
        yield GaugeMetricFamily("controlplane_database_collector_up", "")

    def collect(self) -> Iterator[GaugeMetricFamily]:
        families = _families()
        governance = _governance_family()
        up = 1.0
        try:
            serving = _serving_variants()
            for endpoint, variant, version, role, share in serving:
                families["weight"].add_metric([endpoint, variant, version], share)
                families["info"].add_metric([endpoint, variant, version, role], 1)
            _add_drift(families, {(e, v, m) for e, v, m, _, _ in serving})
            _add_background(families)
            _governance_events(governance)
        except Exception:  # a scrape must still return the process metrics when the DB is down
            logger.exception("reading traffic and drift for /metrics failed")
            families, governance = _families(), _governance_family()
            up = 0.0
        yield from families.values()
        yield governance
        yield GaugeMetricFamily(
            "controlplane_database_collector_up",
            "1 when the last scrape could read traffic and drift from the database.",
            value=up,
        )


DATABASE_COLLECTOR = DatabaseCollector()
