"""The plan page in the admin: start a plan, read its timeline and share chart, press its buttons."""

from __future__ import annotations

import json

import pytest
from django.test import Client

from delivery.controller import rollout_tick
from delivery.models import RolloutPlan
from tests.delivery.conftest import log_rows

pytestmark = pytest.mark.django_db


def _client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_a_scientist_starts_a_plan_in_the_admin_and_its_page_shows_the_timeline(endpoint, scientist):
    dana = _client(scientist)
    assert "Start rollout plan" in dana.get("/admin/delivery/rolloutplan/").content.decode()

    answer = dana.post(
        "/admin/delivery/rolloutplan/start/",
        {
            "endpoint": "ep",
            "version": 2,
            "steps": "2, 20",
            "bake_seconds": 0,
            "failures_to_rollback": 1,
            "max_hold_seconds": 600,
            "checks": json.dumps({"min_requests": {"count": 5}}),
            "reason": "from the admin",
        },
    )

    plan = RolloutPlan.objects.get()
    assert answer.status_code == 302 and answer["Location"].endswith(f"/rolloutplan/{plan.pk}/change/")
    log_rows("v2", 6)
    assert rollout_tick(plan_id=plan.pk) == "advanced"
    page = dana.get(answer["Location"]).content.decode()
    assert 'id="timeline"' in page and 'id="share-chart"' in page
    assert "min_requests: <b>pass</b> — 6 of 5 requests at this step" in page
    assert "2 % → <b>[20 %]</b>" in page
    for button in ("action-pause", "action-abort"):
        assert f'id="{button}"' in page
    assert 'id="action-resume"' not in page and 'id="action-approve"' not in page


def test_the_buttons_call_the_services_and_a_refusal_is_a_form_error(endpoint, scientist):
    dana = _client(scientist)
    dana.post(
        "/admin/delivery/rolloutplan/start/",
        {"endpoint": "ep", "version": 2, "steps": "5", "bake_seconds": 60, "failures_to_rollback": 1,
         "max_hold_seconds": 60, "checks": "{}", "reason": "r"},
    )  # fmt: skip
    plan = RolloutPlan.objects.get()
    base = f"/admin/delivery/rolloutplan/{plan.pk}/action"

    assert dana.post(f"{base}/pause/", {"reason": "wait"}).status_code == 302
    plan.refresh_from_db()
    assert plan.status == "paused"
    refused = dana.post(f"{base}/pause/", {"reason": "again"})
    assert refused.status_code == 200 and "is paused" in refused.content.decode()
    assert dana.post(f"{base}/abort/", {"reason": "stop"}).status_code == 302
    plan.refresh_from_db()
    assert plan.status == "aborted"


def test_bad_start_input_is_shown_on_the_form_and_starts_nothing(endpoint, scientist):
    answer = _client(scientist).post(
        "/admin/delivery/rolloutplan/start/",
        {"endpoint": "ep", "version": 2, "steps": "50, 10", "bake_seconds": 0, "failures_to_rollback": 1,
         "max_hold_seconds": 60, "checks": "{not json", "reason": "r"},
    )  # fmt: skip
    assert answer.status_code == 200 and "Not JSON" in answer.content.decode()
    answer = _client(scientist).post(
        "/admin/delivery/rolloutplan/start/",
        {"endpoint": "ep", "version": 2, "steps": "50, 10", "bake_seconds": 0, "failures_to_rollback": 1,
         "max_hold_seconds": 60, "checks": "{}", "reason": "r"},
    )  # fmt: skip
    assert answer.status_code == 200 and "steps must increase" in answer.content.decode()
    assert not RolloutPlan.objects.exists()


def test_the_endpoint_page_lists_its_rollout_plans_beside_the_other_panels(endpoint, scientist):
    from delivery.services import rollout_start

    plan = rollout_start(
        actor=scientist, endpoint_name="ep", version=2, steps=[5, 50], bake_seconds=0, reason="r"
    )

    page = _client(scientist).get(f"/admin/routing/endpoint/{endpoint.pk}/change/").content.decode()

    assert 'id="rollouts-panel"' in page and f"/admin/delivery/rolloutplan/{plan.pk}/change/" in page
    assert 'id="experiments-panel"' in page and 'id="governance-actions"' in page  # the panels above stay
    assert "/admin/delivery/rolloutplan/start/?endpoint=ep" in page
