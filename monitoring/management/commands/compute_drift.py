"""``manage.py compute_drift [--endpoint E] [--window 60m]``: drift over the prediction log."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from monitoring.drift import PSI_THRESHOLD
from monitoring.services import drift_compute

UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def parse_window(text: str) -> timedelta:
    """``90s``, ``60m``, ``24h`` or ``7d``."""
    match = re.fullmatch(r"(\d+)([smhd])", text.strip())
    if not match or int(match.group(1)) == 0:
        raise CommandError(f"--window {text!r}: use a positive number and a unit s, m, h or d, e.g. 60m")
    return timedelta(**{UNITS[match.group(2)]: int(match.group(1))})


class Command(BaseCommand):
    help = (
        "Compare recent predictions with each version's drift reference and store PSI, KS and "
        "chi-square per feature and for the prediction. Run it on a timer, once per deployment."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--endpoint", help="Only this endpoint.")
        parser.add_argument(
            "--window", default="60m", help="How far back in the prediction log to look: 90s, 60m, 24h, 7d."
        )

    def handle(self, *args: Any, endpoint: str | None, window: str, **options: Any) -> None:
        results = drift_compute(endpoint=endpoint, window=parse_window(window))
        if not results:
            self.stdout.write("no variant had predictions and a reference in the window")
        for r in results:
            flag = "  DRIFT" if r.psi > PSI_THRESHOLD else ""
            self.stdout.write(
                f"{r.endpoint}/{r.variant} v{r.model_version} {r.feature}: PSI {r.psi:.3f} "
                f"n={r.n_live} ({r.reference_kind}){flag}"
            )
