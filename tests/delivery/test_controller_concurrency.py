"""Exactly one controller acts on a plan per tick: controllers in separate processes released at the
same instant, and the real task on real Celery workers."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import timedelta

import pytest

from delivery.models import RolloutPlan
from delivery.services import rollout_start
from registry.models import AuditEvent
from routing.models import Variant
from tests.celery_workers import test_database_url as database_url
from tests.celery_workers import wait_until
from tests.delivery.conftest import log_rows
from tests.mlflow_server import REPO

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

CHECKS = {"min_requests": {"count": 20}, "error_rate": {}}


def _plan(bake_seconds: int = 60) -> RolloutPlan:
    plan = rollout_start(
        actor="system",
        endpoint_name="ep",
        version=2,
        steps=[1, 5, 25],
        bake_seconds=bake_seconds,
        checks=CHECKS,
        reason="race",
    )
    log_rows("v2", 50)
    log_rows("v1", 50)
    return plan


def test_four_controllers_released_at_once_step_the_plan_exactly_once(endpoint, mlflow_server):
    plan = _plan()
    now = (plan.step_started_at + timedelta(seconds=61)).isoformat()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "controlplane.settings",
        "DATABASE_URL": database_url(),
        "MLFLOW_TRACKING_URI": mlflow_server.url,
        "PYTHONPATH": str(REPO),
    }
    go_at = time.time() + 12  # every process has imported Django and mlflow by then
    procs = [
        subprocess.Popen(
            [sys.executable, "tests/delivery/controller_race.py", str(plan.pk), str(go_at), now],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    results = [p.communicate(timeout=120) for p in procs]

    outcomes = sorted(out.strip().splitlines()[-1] for out, err in results)
    assert outcomes.count("advanced") == 1, results
    assert set(outcomes) <= {"advanced", "skipped", "not_due"}, results
    plan.refresh_from_db()
    assert plan.step_index == 1 and plan.events.filter(kind="advanced").count() == 1
    assert AuditEvent.objects.filter(action="routing.traffic_split_set", actor="rollout").count() == 1
    assert Variant.objects.get(endpoint__name="ep", name="v2").weight == 5


def test_the_controller_task_sent_twice_to_two_real_workers_advances_once(endpoint, celery_workers, settings):
    from delivery.tasks import rollout_controller

    plan = _plan(bake_seconds=0)

    rollout_controller.delay()
    rollout_controller.delay()

    wait_until(lambda: RolloutPlan.objects.get(pk=plan.pk).step_index == 1, 60, "the plan advanced")
    time.sleep(3)  # both deliveries have run by now
    plan.refresh_from_db()
    assert plan.step_index == 1, "a second controller stepped the plan within the same tick"
    assert plan.events.filter(kind="advanced").count() == 1
    assert Variant.objects.get(endpoint__name="ep", name="v2").weight == 5
