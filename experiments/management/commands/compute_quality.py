"""``manage.py compute_quality [--endpoint E]``: per-variant quality from feedback, now."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from experiments.quality import quality_compute


class Command(BaseCommand):
    help = "Compute per-variant quality (accuracy, log loss, AUC, MAE, RMSE, outcome means) from feedback."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--endpoint", help="Only this endpoint.")

    def handle(self, *args: Any, **options: Any) -> None:
        rows = quality_compute(endpoint=options.get("endpoint"))
        self.stdout.write(f"{rows} quality values written")
