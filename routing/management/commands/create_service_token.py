"""``manage.py create_service_token NAME [--endpoint E ...] [--all-endpoints] [--can-override]
[--scope predict|feedback|batch ...] [--rate-limit N]``."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from routing.governance.errors import GovernanceError
from routing.governance.tokens import SCOPES, service_token_create


class Command(BaseCommand):
    help = (
        "Create a /predict service token; the token is printed once and stored only hashed. "
        "It is accepted by every web worker within about two routing-table refreshes (~2 s)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name")
        parser.add_argument("--endpoint", action="append", default=[], help="endpoint it may call (repeat)")
        parser.add_argument("--all-endpoints", action="store_true", help="allow every endpoint")
        parser.add_argument("--can-override", action="store_true", help="may force a variant with X-Variant")
        parser.add_argument(
            "--scope",
            action="append",
            choices=SCOPES,
            default=None,
            help="what it may call (repeat; default: predict)",
        )
        parser.add_argument("--rate-limit", type=int, default=None, help="requests per second (0: unlimited)")
        parser.add_argument("--reason", default="created with manage.py create_service_token")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            _, raw = service_token_create(
                actor="system",
                name=options["name"],
                endpoints=options["endpoint"],
                all_endpoints=options["all_endpoints"],
                can_override=options["can_override"],
                rate_limit_per_second=options["rate_limit"],
                scopes=options["scope"],
                reason=options["reason"],
            )
        except GovernanceError as exc:
            raise CommandError(exc.message) from exc
        self.stdout.write(raw)
