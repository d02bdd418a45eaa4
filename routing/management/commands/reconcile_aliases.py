"""reconcile_aliases [--endpoint E ...]: push each endpoint's champion/challenger to MLflow now."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from registry.mlflow_client import MlflowUnavailable
from routing.governance.outbox import alias_pushes_apply
from routing.governance.services import GovernanceError, endpoint_aliases_reconcile
from routing.models import Endpoint


class Command(BaseCommand):
    help = (
        "Set the MLflow aliases champion/challenger from the database, and apply every pending "
        "alias push, here and now (no worker needed)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--endpoint", action="append", default=[], help="Only this endpoint (repeatable)."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        names = options["endpoint"] or list(Endpoint.objects.values_list("name", flat=True))
        for name in names:
            try:
                wanted = endpoint_aliases_reconcile(endpoint_name=name)
            except GovernanceError as exc:
                raise CommandError(f"{name}: {exc.message}") from exc
            model = Endpoint.objects.get(name=name).registered_model.name
            try:
                applied = alias_pushes_apply(model_name=model)
            except MlflowUnavailable as exc:
                raise CommandError(f"{name}: queued, not applied yet (a worker retries): {exc}") from exc
            state = "applied" if applied else "queued (another worker is applying it)"
            self.stdout.write(f"{name}: " + ", ".join(f"{a}={v}" for a, v in wanted.items()) + f" {state}")
