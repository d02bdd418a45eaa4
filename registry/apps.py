from __future__ import annotations

from django.apps import AppConfig


class RegistryConfig(AppConfig):
    """The mirror of the MLflow model registry and the audit trail."""

    name = "registry"
    verbose_name = "Model registry (mirror of MLflow)"
