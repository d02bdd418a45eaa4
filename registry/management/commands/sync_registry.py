"""``manage.py sync_registry [--model NAME]``: reconcile the mirror with MLflow."""

from __future__ import annotations

import sys
import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from registry.mlflow_client import MlflowUnavailable, tracking_uri
from registry.services import registry_sync


class Command(BaseCommand):
    help = "Mirror MLflow's registered models and versions (idempotent; safe to run on a timer)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--model", help="Sync only this registered model.")

    def handle(self, *args: Any, model: str | None = None, **options: Any) -> None:
        started = time.monotonic()
        tty = sys.stdout.isatty()

        def progress(name: str, done: int, total: int) -> None:
            if tty:
                self.stdout.write(f"\r{name}: reading version {done}/{total}", ending="")
                if done == total:
                    self.stdout.write("")

        try:
            report = registry_sync(model_name=model, progress=progress)
        except MlflowUnavailable as exc:
            raise CommandError(f"sync failed, mirror unchanged: {exc}") from exc
        took = time.monotonic() - started
        self.stdout.write(
            self.style.SUCCESS(
                f"Synced {report.models_seen} model(s), {report.versions_seen} version(s) from "
                f"{tracking_uri()} in {took:.1f}s: {len(report.created)} created, "
                f"{len(report.updated)} updated, {len(report.deleted)} marked deleted, "
                f"{len(report.alias_changes)} alias change(s) made outside the control plane."
            )
        )
        for change in report.alias_changes:
            self.stdout.write(f"  external alias change: {change}")
