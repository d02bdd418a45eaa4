from __future__ import annotations

from django.apps import AppConfig


class MonitoringConfig(AppConfig):
    """Metrics, drift, dashboards and alert rules."""

    name = "monitoring"
    verbose_name = "Monitoring"

    def ready(self) -> None:
        from prometheus_client import REGISTRY

        from monitoring.collectors import DATABASE_COLLECTOR

        # Single-process mode exports the global registry; multiprocess mode adds the
        # collector per scrape in monitoring.views. ready() can run twice (tests, reloader).
        try:
            REGISTRY.register(DATABASE_COLLECTOR)
        except ValueError:  # already registered: its names are taken
            pass
