"""``controlplane_variant_quality`` and its companions, read from ``VariantQuality`` at scrape time.

Like monitoring's database collector (and registered beside it through
``monitoring.metrics.register_database_collector``): the truth is in the database, so every
worker answers the same. Only variants currently serving on an active endpoint are exported.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

logger = logging.getLogger(__name__)

LABELS = ["endpoint", "variant", "model_version", "metric"]
COLLECTED_METRICS = {
    "controlplane_variant_quality": "gauge",
    "controlplane_variant_quality_samples": "gauge",
    "controlplane_variant_label_delay_seconds": "gauge",
}


def _families() -> dict[str, GaugeMetricFamily]:
    return {
        "quality": GaugeMetricFamily(
            "controlplane_variant_quality",
            "Quality of a serving variant from its feedback: accuracy, log_loss, auc, mae, rmse, outcome:<name>.",
            labels=LABELS,
        ),
        "samples": GaugeMetricFamily(
            "controlplane_variant_quality_samples",
            "Feedback items the quality value is computed from.",
            labels=LABELS,
        ),
        "delay": GaugeMetricFamily(
            "controlplane_variant_label_delay_seconds",
            "Median time from a prediction to its ground truth.",
            labels=["endpoint", "variant", "model_version"],
        ),
    }


class QualityCollector(Collector):
    """Variant quality per metric, with sample counts and label delay."""

    def describe(self) -> Iterator[GaugeMetricFamily]:
        yield from _families().values()  # registration must not query the database

    def collect(self) -> Iterator[GaugeMetricFamily]:
        families = _families()
        try:
            from experiments.models import VariantQuality
            from routing.models import Variant

            serving = set(
                Variant.objects.filter(endpoint__is_active=True, role__in=Variant.SERVING_ROLES).values_list(
                    "endpoint__name", "name", "model_version__version"
                )
            )
            delays_done: set[tuple[str, str, int]] = set()
            for q in VariantQuality.objects.all():
                group = (q.endpoint, q.variant, q.model_version)
                if group not in serving or q.value is None:
                    continue
                labels = [q.endpoint, q.variant, str(q.model_version), q.metric]
                families["quality"].add_metric(labels, q.value)
                families["samples"].add_metric(labels, q.count)
                if q.label_delay_seconds is not None and group not in delays_done:
                    delays_done.add(group)
                    families["delay"].add_metric(labels[:3], q.label_delay_seconds)
        except Exception:  # a scrape must still answer when the database is away
            logger.exception("reading variant quality for /metrics failed")
            families = _families()
        yield from families.values()


QUALITY_COLLECTOR = QualityCollector()
