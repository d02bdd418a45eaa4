"""/api/v1/rollouts/: start, read the timeline, pause, resume, abort, approve; refusals are 4xx bodies."""

from __future__ import annotations

from datetime import timedelta

import pytest
from rest_framework.test import APIClient

from delivery.controller import rollout_tick
from delivery.models import RolloutPlan
from tests.delivery.conftest import log_rows

pytestmark = pytest.mark.django_db

START = {
    "endpoint": "ep",
    "version": 2,
    "steps": [10],
    "bake_seconds": 0,
    "checks": {"min_requests": {"count": 5}},
    "reason": "ci pipeline",
}


def _client(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def test_a_pipeline_starts_a_plan_follows_it_and_a_second_person_approves_it(endpoint, approver):
    from tests.routing.helpers import role_user

    # The starter may approve promotions in general, but never the one they asked for.
    dana, abel = _client(role_user("dora", "data scientist", "approver")), _client(approver)

    started = dana.post("/api/v1/rollouts/", {**START, "approval_required": True}, format="json")

    assert started.status_code == 201, started.content
    plan = started.json()
    assert plan["status"] == "running" and plan["percent"] == 10 and plan["variant"] == "v2"
    assert [e["kind"] for e in plan["events"]] == ["started"]
    log_rows("v2", 10)
    assert rollout_tick(plan_id=plan["id"]) == "awaiting_approval"
    waiting = dana.get(f"/api/v1/rollouts/{plan['id']}/").json()
    assert waiting["status"] == "awaiting_approval"
    assert waiting["events"][-1]["checks"][0] == {
        "check": "min_requests",
        "result": "pass",
        "detail": "10 of 5 requests at this step",
        "value": 10.0,
        "threshold": 5.0,
    }
    own = dana.post(f"/api/v1/rollouts/{plan['id']}/approve/", {}, format="json")
    assert own.status_code == 403 and own.json()["error"]["code"] == "four_eyes"

    approved = abel.post(f"/api/v1/rollouts/{plan['id']}/approve/", {"reason": "ok"}, format="json")

    assert approved.status_code == 200 and approved.json()["status"] == "completed"
    listed = dana.get("/api/v1/rollouts/?endpoint=ep&status=completed").json()
    assert [p["id"] for p in listed["results"]] == [plan["id"]]


def test_pause_resume_abort_through_the_api(endpoint, scientist):
    dana = _client(scientist)
    plan = dana.post("/api/v1/rollouts/", START, format="json").json()

    assert (
        dana.post(f"/api/v1/rollouts/{plan['id']}/pause/", {"reason": "hold"}, format="json").json()["status"]
        == "paused"
    )
    assert (
        dana.post(f"/api/v1/rollouts/{plan['id']}/pause/", {"reason": "hold"}, format="json").status_code
        == 409
    )
    assert (
        dana.post(f"/api/v1/rollouts/{plan['id']}/resume/", {"reason": "go"}, format="json").json()["status"]
        == "running"
    )
    aborted = dana.post(f"/api/v1/rollouts/{plan['id']}/abort/", {"reason": "stop"}, format="json").json()
    assert aborted["status"] == "aborted" and aborted["percent"] == 0
    assert [e["kind"] for e in aborted["events"]] == ["started", "paused", "resumed", "aborted"]


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({**START, "steps": [50, 10]}, 400),
        ({**START, "steps": "ten"}, 400),
        ({**START, "checks": {"latency": {"max_ratio": "x"}}}, 400),
        ({**START, "checks": ["min_requests"]}, 400),
        ({**START, "checks": {"drift": {"required": True, "max_psi": -1}}}, 400),
        ({**START, "endpoint": "nope"}, 404),
        ({**START, "reason": ""}, 400),
        ({k: v for k, v in START.items() if k != "steps"}, 400),
    ],
)
def test_bad_bodies_are_4xx_with_the_error_body_and_start_nothing(endpoint, scientist, body, status):
    answer = _client(scientist).post("/api/v1/rollouts/", body, format="json")

    assert answer.status_code == status, answer.content
    assert set(answer.json()["error"]) == {"code", "message", "details"}
    assert not RolloutPlan.objects.exists()


def test_actions_on_unknown_or_huge_ids_are_404(scientist, db):
    dana = _client(scientist)
    assert dana.post("/api/v1/rollouts/999/pause/", {"reason": "x"}, format="json").status_code == 404
    assert dana.get("/api/v1/rollouts/172655205463658299392/").status_code == 404


def test_anonymous_callers_are_refused(db):
    assert APIClient().get("/api/v1/rollouts/").status_code in (401, 403)


def test_the_schema_documents_the_rollout_operations(scientist):
    schema = _client(scientist).get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    paths = schema["paths"]
    assert "post" in paths["/api/v1/rollouts/"]
    for action in ("pause", "resume", "abort", "approve"):
        assert "post" in paths[f"/api/v1/rollouts/{{id}}/{action}/"]
    steps = schema["components"]["schemas"]["RolloutStartInput"]["properties"]["steps"]
    assert steps["items"]["maximum"] == 99 and steps["maxItems"] == 20
    _ = timedelta
