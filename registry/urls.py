from __future__ import annotations

from django.urls import path

from registry.webhooks import mlflow_webhook

urlpatterns = [path("hooks/mlflow", mlflow_webhook, name="mlflow-webhook")]
