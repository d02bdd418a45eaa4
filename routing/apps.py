from __future__ import annotations

from django.apps import AppConfig


class RoutingConfig(AppConfig):
    """Endpoints, variants, traffic, promotion (``governance``) and the routed /predict (``serving``)."""

    name = "routing"
    verbose_name = "Routing and traffic"
