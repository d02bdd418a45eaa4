"""``manage.py create_service_token NAME [--endpoint E ...] [--all-endpoints] [--can-override]``."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from routing.tokens import service_token_create


class Command(BaseCommand):
    help = "Create a /predict service token; the token is printed once and stored only hashed."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name")
        parser.add_argument("--endpoint", action="append", default=[], help="endpoint it may call (repeat)")
        parser.add_argument("--all-endpoints", action="store_true", help="allow every endpoint")
        parser.add_argument("--can-override", action="store_true", help="may force a variant with X-Variant")
        parser.add_argument("--rate-limit", type=int, default=None, help="requests per second (0: unlimited)")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            _, raw = service_token_create(
                name=options["name"],
                endpoints=options["endpoint"],
                all_endpoints=options["all_endpoints"],
                can_override=options["can_override"],
                rate_limit_per_second=options["rate_limit"],
            )
        except ValidationError as exc:
            raise CommandError("; ".join(exc.messages)) from exc
        self.stdout.write(raw)
