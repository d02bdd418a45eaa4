from __future__ import annotations

from django.apps import AppConfig


class RoutingConfig(AppConfig):
    """Endpoints, variants, traffic, promotion and the routed /predict."""

    name = "routing"
    verbose_name = "Routing and traffic"

    def ready(self) -> None:
        from django.conf import settings

        if not settings.TELEMETRY_ENABLED:
            from monitoring import metrics

            metrics.set_enabled(False)
