"""The rollout series on /metrics: step and deadline gauges from the database, check and rollback
counters recorded by the controller."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

from delivery.controller import rollout_tick
from delivery.services import rollout_start
from tests.delivery.conftest import log_rows

pytestmark = pytest.mark.django_db


def _value(text: str, name: str, **labels: str) -> float | None:
    for line in text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return None


def test_metrics_show_the_plans_step_deadline_checks_and_rollback(client, endpoint):
    plan = rollout_start(
        actor="system",
        endpoint_name="ep",
        version=2,
        steps=[2, 20],
        bake_seconds=60,
        max_hold_seconds=600,
        checks={"min_requests": {"count": 10}, "error_rate": {}},
        reason="metrics",
    )
    text = client.get("/metrics").content.decode()
    assert _value(text, "controlplane_rollout_step", endpoint="ep", variant="v2") == 2
    deadline = _value(text, "controlplane_rollout_deadline_timestamp_seconds", endpoint="ep", variant="v2")
    assert deadline == pytest.approx(plan.step_started_at.timestamp() + 660)
    before = _value(text, "controlplane_rollout_rollbacks_total", endpoint="ep") or 0
    failed = (
        _value(text, "controlplane_rollout_checks_total", endpoint="ep", check="error_rate", result="fail")
        or 0
    )

    log_rows("v2", 30, failed=True)
    assert rollout_tick(plan_id=plan.pk, now=plan.step_started_at + timedelta(seconds=5)) == "rolled_back"

    text = client.get("/metrics").content.decode()
    assert _value(text, "controlplane_rollout_step", endpoint="ep", variant="v2") is None  # ended
    assert _value(text, "controlplane_rollout_rollbacks_total", endpoint="ep") == before + 1
    after = _value(
        text, "controlplane_rollout_checks_total", endpoint="ep", check="error_rate", result="fail"
    )
    assert after == failed + 1
    assert re.search(
        r'controlplane_rollout_checks_total\{check="min_requests",endpoint="ep",result="pass"\}', text
    )
