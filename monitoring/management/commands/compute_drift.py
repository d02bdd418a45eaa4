"""``manage.py compute_drift [--endpoint E] [--window-minutes M]``: drift over the prediction log."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from monitoring.drift import PSI_THRESHOLD
from monitoring.services import DEFAULT_WINDOW, drift_compute


class Command(BaseCommand):
    help = (
        "Compare recent predictions with each version's drift reference and store PSI, KS and "
        "chi-square per feature and for the prediction. Run it on a timer, once per deployment."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--endpoint", help="Only this endpoint.")
        parser.add_argument(
            "--window-minutes",
            type=int,
            default=int(DEFAULT_WINDOW.total_seconds() // 60),
            help="How far back in the prediction log to look (default: %(default)s).",
        )

    def handle(self, *args: Any, endpoint: str | None, window_minutes: int, **options: Any) -> None:
        results = drift_compute(endpoint=endpoint, window=timedelta(minutes=window_minutes))
        if not results:
            self.stdout.write("no variant had predictions and a reference in the window")
        for r in results:
            flag = "  DRIFT" if r.psi > PSI_THRESHOLD else ""
            self.stdout.write(
                f"{r.endpoint}/{r.variant} v{r.model_version} {r.feature}: PSI {r.psi:.3f} "
                f"n={r.n_live} ({r.reference_kind}){flag}"
            )
