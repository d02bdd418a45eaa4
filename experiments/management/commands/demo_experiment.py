"""``manage.py demo_experiment``: the experiment step of ``make run`` (after ``demo``).

Gives the demo token the feedback scope and starts an accuracy experiment on the demo endpoint
unless one runs. ``--traffic`` then keeps sending demo rows to /predict and the true labels of
a share of them to /feedback, so the experiment reaches a verdict within minutes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from experiments.demo import demo_experiment_ensure, demo_traffic


class Command(BaseCommand):
    help = "Start the demo experiment (accuracy, champion vs challenger); --traffic sends traffic and ground truth."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--endpoint", default="demo")
        parser.add_argument("--base-url", default="http://127.0.0.1:8000")
        parser.add_argument("--traffic", action="store_true", help="Keep sending predictions and labels.")
        parser.add_argument(
            "--label-share", type=float, default=0.5, help="Share of rows whose truth is sent."
        )
        parser.add_argument("--rps", type=float, default=10.0, help="/predict requests per second.")
        parser.add_argument("--duration", type=float, default=None, help="Stop after this many seconds.")

    def handle(self, *args: Any, **options: Any) -> None:
        stored = Path(settings.VAR_DIR) / "demo_token"
        if not stored.exists():
            raise CommandError("no demo token in var/demo_token: run `manage.py demo` first")
        token = stored.read_text().strip()
        if not options["traffic"]:
            experiment = demo_experiment_ensure(endpoint=options["endpoint"], raw_token=token)
            self.stdout.write(
                f"Experiment '{experiment.name}' is {experiment.status}: verdict in the admin "
                f"(Experiments), feedback with: POST {options['base_url']}/feedback/{options['endpoint']}"
            )
            return
        counts = demo_traffic(
            base_url=options["base_url"],
            endpoint=options["endpoint"],
            token=token,
            requests_per_second=options["rps"],
            label_share=options["label_share"],
            duration=options["duration"],
            log=self.stderr.write,
        )
        self.stdout.write(", ".join(f"{k}: {v}" for k, v in counts.items()))
