"""``{% load monitoring_panels %}{% endpoint_monitoring_panel endpoint.name %}``: traffic and drift
per variant, for any admin page (the Endpoint change page includes it through a template)."""

from __future__ import annotations

from typing import Any

from django import template

from monitoring.charts import drift_histogram, psi_sparkline, share_bar
from monitoring.drift import PSI_THRESHOLD
from monitoring.selectors import endpoint_monitoring

register = template.Library()


@register.inclusion_tag("monitoring/endpoint_panel.html")
def endpoint_monitoring_panel(endpoint_name: str) -> dict[str, Any]:
    variants = endpoint_monitoring(endpoint_name)
    for v in variants:
        for f in v.features:
            f.sparkline = psi_sparkline(f.history)
            f.histogram = drift_histogram(f.latest.feature, f.reference, f.latest.live_shares)
    return {
        "endpoint_name": endpoint_name,
        "variants": variants,
        "threshold": PSI_THRESHOLD,
        "share_bar": share_bar([(v.name, v.share) for v in variants if v.share > 0]),
    }
