from __future__ import annotations

from django.apps import AppConfig


class ExperimentsConfig(AppConfig):
    """Feedback in, per-variant quality, experiments and their always-valid analysis."""

    name = "experiments"
    verbose_name = "Experiments"

    def ready(self) -> None:
        from prometheus_client import REGISTRY

        from experiments.collectors import QUALITY_COLLECTOR
        from monitoring import metrics

        # The /metrics view adds these per scrape under multiprocess mode (monitoring.views).
        metrics.register_database_collector(QUALITY_COLLECTOR)
        try:
            REGISTRY.register(QUALITY_COLLECTOR)
        except ValueError:  # ready() can run twice (tests, reloader)
            pass
