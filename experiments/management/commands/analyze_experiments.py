"""``manage.py analyze_experiments [--endpoint E] [--every SECONDS] [--json]``: a look at every
running experiment (per-variant quality first, so the dashboards agree); ``--every`` repeats
(``make run``). ``--json`` prints one JSON object per pass for pipelines: ``verdicts``
(experiment -> challenger -> outcome) and ``looks``, each look's whole analysis (arms,
comparisons with their always-valid interval and verdict sentence, SRM, guardrails)."""

from __future__ import annotations

import json
import time
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from experiments.models import ExperimentLook
from experiments.quality import quality_compute
from experiments.services import experiments_analyze_running


class Command(BaseCommand):
    help = "Analyse every running experiment now (always-valid verdicts, SRM, guardrails)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--endpoint", help="Only this endpoint's experiment.")
        parser.add_argument("--every", type=float, default=0, help="Repeat every this many seconds.")
        parser.add_argument(
            "--json",
            dest="as_json",
            action="store_true",
            help="Print one JSON object per pass instead of lines.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        while True:
            quality_compute(endpoint=options.get("endpoint"))
            looks = experiments_analyze_running(endpoint_name=options.get("endpoint"))
            if options["as_json"]:
                self.stdout.write(_as_json(looks))
            for look in [] if options["as_json"] else looks:
                verdicts = ", ".join(f"{arm}: {outcome}" for arm, outcome in look.outcomes.items())
                self.stdout.write(
                    f"{look.experiment.name}: {verdicts}{' (SRM flagged)' if look.srm_flagged else ''}"
                )
            if not options["every"]:
                return
            time.sleep(options["every"])


def _as_json(looks: list[ExperimentLook]) -> str:
    return json.dumps(
        {
            "verdicts": {look.experiment.name: look.outcomes for look in looks},
            "looks": [
                {
                    **look.snapshot,
                    "experiment": look.experiment.name,
                    "endpoint": look.experiment.endpoint.name,
                    "computed_at": look.computed_at.isoformat(),
                    "outcomes": look.outcomes,
                    "srm_flagged": look.srm_flagged,
                }
                for look in looks
            ],
        },
        default=str,
    )
