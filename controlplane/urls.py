"""URL map: admin, hooks, health, metrics; each app adds its own routes."""

from __future__ import annotations

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView

from controlplane import health
from monitoring.views import metrics

urlpatterns = [
    path("admin/", admin.site.urls),
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("", include("registry.urls")),
    path("api/v1/", include("routing.api.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("", include("routing.urls_predict")),
    # Not django_prometheus.urls: its view drops the database-backed gauges in multiprocess mode.
    path("metrics", metrics, name="prometheus-django-metrics"),
]
