from __future__ import annotations

from django.apps import AppConfig


class MonitoringConfig(AppConfig):
    """Metrics, drift, dashboards and alert rules."""

    name = "monitoring"
    verbose_name = "Monitoring"

    def ready(self) -> None:
        from django.conf import settings
        from prometheus_client import REGISTRY

        from monitoring import metrics
        from monitoring.collectors import DATABASE_COLLECTOR
        from monitoring.task_queue import TASK_QUEUE_COLLECTOR

        # CONTROLPLANE_TELEMETRY=false exists to measure what recording costs (`make bench`).
        metrics.set_enabled(settings.TELEMETRY_ENABLED)

        # Single-process mode exports the global registry; multiprocess mode adds the
        # collector per scrape in monitoring.views. ready() can run twice (tests, reloader).
        for collector in (DATABASE_COLLECTOR, TASK_QUEUE_COLLECTOR):
            try:
                REGISTRY.register(collector)
            except ValueError:  # already registered: its names are taken
                pass
