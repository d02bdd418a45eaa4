"""``manage.py sync_registry [--model NAME] [--json]``: reconcile the mirror with MLflow.

``--json`` prints one JSON object with what changed instead of the summary for people.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from registry.mlflow_client import MlflowUnavailable, tracking_uri
from registry.services import SyncReport, registry_sync


class Command(BaseCommand):
    help = "Mirror MLflow's registered models and versions (idempotent; safe to run on a timer)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--model", help="Sync only this registered model.")
        parser.add_argument(
            "--json", dest="as_json", action="store_true", help="Print one JSON object instead of a summary."
        )

    def handle(self, *args: Any, model: str | None = None, as_json: bool = False, **options: Any) -> None:
        started = time.monotonic()
        tty = sys.stdout.isatty() and not as_json

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
        if as_json:
            self.stdout.write(_as_json(report, took))
            return
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


def _as_json(report: SyncReport, seconds: float) -> str:
    return json.dumps(
        {
            "tracking_uri": tracking_uri(),
            "seconds": round(seconds, 3),
            "models_seen": report.models_seen,
            "versions_seen": report.versions_seen,
            "changed": report.changed,
            "created": report.created,
            "updated": report.updated,
            "deleted": report.deleted,
            "alias_changes": report.alias_changes,
        },
        indent=2,
    )
