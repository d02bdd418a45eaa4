"""``GET /metrics``: this process's metrics, or every worker's under multiprocess mode, plus the
database-backed gauges of ``monitoring.collectors`` and the task queue depth of
``monitoring.task_queue``.

django-prometheus' own view builds a registry with only the multiprocess collector when
``PROMETHEUS_MULTIPROC_DIR`` is set, which would drop the traffic and drift gauges; this view
adds them in both modes.
"""

from __future__ import annotations

import os

from django.http import HttpRequest, HttpResponse
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest, multiprocess

from monitoring import metrics as metrics_leaf
from monitoring.collectors import DATABASE_COLLECTOR
from monitoring.task_queue import TASK_QUEUE_COLLECTOR


def metrics_registry() -> CollectorRegistry:
    """The registry a scrape reads (the collector is on the global one since app start)."""
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return REGISTRY
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    registry.register(DATABASE_COLLECTOR)
    registry.register(TASK_QUEUE_COLLECTOR)
    for collector in metrics_leaf.DATABASE_COLLECTORS:  # e.g. experiments' variant quality
        registry.register(collector)
    return registry


def metrics(request: HttpRequest) -> HttpResponse:
    return HttpResponse(generate_latest(metrics_registry()), content_type=CONTENT_TYPE_LATEST)
