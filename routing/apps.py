from __future__ import annotations

from django.apps import AppConfig


class RoutingConfig(AppConfig):
    """Endpoints, variants, traffic, promotion and the routed /predict."""

    name = "routing"
    verbose_name = "Routing and traffic"
