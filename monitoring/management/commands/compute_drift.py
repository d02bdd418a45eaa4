"""``manage.py compute_drift [--endpoint E] [--window 60m] [--json] [--fail-on-drift]``: drift over
the prediction log.

``--json`` prints one JSON object (the window, the threshold, ``drifted`` and every result) instead
of lines for people; ``--fail-on-drift`` exits with status 3 when any feature or prediction drifted
(PSI above the threshold), so a pipeline step can stop on it. Errors stay exit status 1.
"""

from __future__ import annotations

import json
import re
from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from monitoring.drift import PSI_THRESHOLD
from monitoring.models import DriftResult
from monitoring.services import drift_compute

DRIFT_EXIT_STATUS = 3  # distinct from 1 (an error): "it ran, and there is drift"

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
        parser.add_argument(
            "--json", dest="as_json", action="store_true", help="Print one JSON object instead of lines."
        )
        parser.add_argument(
            "--fail-on-drift",
            action="store_true",
            help=f"Exit with status {DRIFT_EXIT_STATUS} when any PSI is above {PSI_THRESHOLD}.",
        )

    def handle(
        self,
        *args: Any,
        endpoint: str | None,
        window: str,
        as_json: bool = False,
        fail_on_drift: bool = False,
        **options: Any,
    ) -> None:
        span = parse_window(window)
        results = drift_compute(endpoint=endpoint, window=span)
        drifted = [r for r in results if r.psi > PSI_THRESHOLD]
        if as_json:
            self.stdout.write(_as_json(results, endpoint, span, bool(drifted)))
        else:
            self._write_lines(results)
        if fail_on_drift and drifted:
            names = sorted({f"{r.endpoint}/{r.variant} {r.feature}" for r in drifted})
            raise CommandError(
                f"drift above PSI {PSI_THRESHOLD}: {', '.join(names)}", returncode=DRIFT_EXIT_STATUS
            )

    def _write_lines(self, results: list[DriftResult]) -> None:
        if not results:
            self.stdout.write("no variant had predictions and a reference in the window")
        for r in results:
            flag = "  DRIFT" if r.psi > PSI_THRESHOLD else ""
            self.stdout.write(
                f"{r.endpoint}/{r.variant} v{r.model_version} {r.feature}: PSI {r.psi:.3f} "
                f"n={r.n_live} ({r.reference_kind}){flag}"
            )


def _as_json(results: list[DriftResult], endpoint: str | None, span: timedelta, drifted: bool) -> str:
    window_end = results[0].window_end.isoformat() if results else None
    return json.dumps(
        {
            "endpoint": endpoint,
            "window_seconds": int(span.total_seconds()),
            "window_end": window_end,
            "threshold": PSI_THRESHOLD,
            "drifted": drifted,
            "results": [_result(r) for r in results],
        },
        indent=2,
    )


def _result(r: DriftResult) -> dict[str, Any]:
    return {
        "endpoint": r.endpoint,
        "variant": r.variant,
        "model_name": r.model_name,
        "model_version": r.model_version,
        "feature": None if r.is_prediction else r.feature,
        "is_prediction": r.is_prediction,
        "kind": r.feature_kind,
        "psi": r.psi,
        "drifted": r.psi > PSI_THRESHOLD,
        "ks_stat": r.ks_stat,
        "ks_pvalue": r.ks_pvalue,
        "chi2_stat": r.chi2_stat,
        "chi2_pvalue": r.chi2_pvalue,
        "n_live": r.n_live,
        "n_reference": r.n_reference,
        "reference_kind": r.reference_kind,
    }
