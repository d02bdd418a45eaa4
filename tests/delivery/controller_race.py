"""One controller in its own process: wait for a shared instant, then tick one plan (the race test).

``python tests/delivery/controller_race.py PLAN_ID GO_AT NOW_ISO`` prints the tick's outcome.
"""

from __future__ import annotations

import sys
import time
from datetime import datetime

import django

django.setup()

from delivery.controller import rollout_tick  # noqa: E402

plan_id, go_at, now = int(sys.argv[1]), float(sys.argv[2]), datetime.fromisoformat(sys.argv[3])
time.sleep(max(0.0, go_at - time.time()))
print(rollout_tick(plan_id=plan_id, now=now), flush=True)
