from __future__ import annotations

from django.apps import AppConfig


class DeliveryConfig(AppConfig):
    """Progressive delivery: rollout plans and the controller that walks them."""

    name = "delivery"
    verbose_name = "Progressive delivery"

    def ready(self) -> None:
        from prometheus_client import REGISTRY

        from delivery.collectors import ROLLOUT_COLLECTOR
        from monitoring.metrics import register_database_collector

        # /metrics in multiprocess mode builds its registry per scrape from the leaf's list.
        register_database_collector(ROLLOUT_COLLECTOR)
        try:
            REGISTRY.register(ROLLOUT_COLLECTOR)
        except ValueError:  # ready() can run twice (tests, reloader)
            pass
