from __future__ import annotations

from django.apps import AppConfig


class MonitoringConfig(AppConfig):
    """Metrics, drift, dashboards and alert rules."""

    name = "monitoring"
    verbose_name = "Monitoring"
