"""``manage.py register_mlflow_webhook --url URL``: subscribe this control plane to MLflow's registry events."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from registry import mlflow_client
from registry.mlflow_client import MlflowUnavailable


class Command(BaseCommand):
    help = "Create or update the MLflow webhook that delivers registry events to /hooks/mlflow."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--url", required=True, help="Public URL of this control plane's /hooks/mlflow")
        parser.add_argument("--name", default="controlplane", help="Webhook name in MLflow")

    def handle(self, *args: Any, url: str, name: str, **options: Any) -> None:
        if not settings.MLFLOW_WEBHOOK_SECRET:
            raise CommandError("MLFLOW_WEBHOOK_SECRET must be set: deliveries are verified with it")
        try:
            hook_id = mlflow_client.webhook_ensure(name=name, url=url, secret=settings.MLFLOW_WEBHOOK_SECRET)
        except MlflowUnavailable as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"MLflow webhook {name!r} ({hook_id}) delivers to {url}")
