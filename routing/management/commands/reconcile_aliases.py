"""reconcile_aliases [--endpoint E ...]: push each endpoint's champion/challenger to MLflow."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from routing.models import Endpoint
from routing.services import GovernanceError, endpoint_aliases_reconcile


class Command(BaseCommand):
    help = "Set the MLflow aliases champion/challenger from the database (after an MLflow outage)."

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
            self.stdout.write(f"{name}: " + ", ".join(f"{a}={v}" for a, v in wanted.items()))
