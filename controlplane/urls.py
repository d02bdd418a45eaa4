"""URL map: admin, hooks, health, metrics; each app adds its own routes."""

from __future__ import annotations

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from controlplane import health
from monitoring.views import metrics

urlpatterns = [
    path("admin/", admin.site.urls),
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("", include("registry.urls")),
    path("api/v1/", include("routing.governance.api.urls")),
    path("api/v1/", include("delivery.api.urls")),
    path("api/v1/", include("experiments.api")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="swagger-ui"),
    path("api/redoc/", SpectacularRedocView.as_view(url_name="schema"), name="redoc"),
    path("", include("routing.serving.urls")),
    path("", include("experiments.urls")),
    # Not django_prometheus.urls: its view drops the database-backed gauges in multiprocess mode.
    path("metrics", metrics, name="prometheus-django-metrics"),
]
