"""``manage.py prune_predictions --older-than-days N``: prediction-log retention."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from routing.serving.prediction_log import prune


class Command(BaseCommand):
    help = "Delete prediction-log rows older than N days."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--older-than-days", type=int, required=True)

    def handle(self, *args: Any, **options: Any) -> None:
        days = options["older_than_days"]
        if days < 0:
            from django.core.management.base import CommandError

            raise CommandError("--older-than-days must be 0 or more")
        self.stdout.write(f"deleted {prune(days)} prediction-log rows older than {days} days")
