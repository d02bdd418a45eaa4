"""Where people see experiments: the admin page (verdict, effect chart, SRM, guardrails, timeline,
linked from the endpoint page) and the same through /api/v1/experiments/ (and its OpenAPI)."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from experiments.models import Experiment
from experiments.services import experiment_analyze, experiment_create, experiment_start
from tests.experiments.test_experiments import TWO_ARMS, plant
from tests.routing.helpers import role_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def running(serving):
    endpoint = serving.endpoint("ab", TWO_ARMS)
    experiment = experiment_create(
        actor="system",
        endpoint_name="ab",
        name="acc",
        primary_metric="accuracy",
        minimum_effect=0.05,
        baseline_mean=0.9,
        guardrails=[{"metric": "latency_p99_ms", "tolerance": 5}],
        reason="why not",
    )
    experiment_start(actor="system", experiment_id=experiment.pk, reason="go")
    plant("ab", "champ", 1, 500, 0.92, seed=1)
    plant("ab", "chall", 2, 500, 0.70, seed=2)
    experiment_analyze(experiment_id=experiment.pk)
    experiment_analyze(experiment_id=experiment.pk)
    return endpoint, experiment


def _logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_the_experiment_page_shows_verdict_chart_srm_guardrails_and_timeline(running):
    endpoint, experiment = running
    client = _logged_in(role_user("dana", "data scientist"))
    page = client.get(reverse("admin:experiments_experiment_change", args=[experiment.pk])).content.decode()
    assert "chall: worse" in page and "always-valid" in page
    assert 'class="effect-chart"' in page and "<polygon" in page
    assert "Sample ratio mismatch" in page and "OK: p =" in page
    assert "latency_p99_ms" in page
    assert "experiments.start" in page and "experiments.create" in page
    assert 'id="action-stop"' in page and 'id="action-start"' not in page
    endpoint_page = client.get(reverse("admin:routing_endpoint_change", args=[endpoint.pk])).content.decode()
    assert reverse("admin:experiments_experiment_change", args=[experiment.pk]) in endpoint_page
    assert 'id="experiments-panel"' in endpoint_page and "chall: worse" in endpoint_page
    assert 'id="new-experiment"' in endpoint_page


def test_the_admin_creates_starts_and_stops_through_the_services(serving):
    endpoint = serving.endpoint("ab", TWO_ARMS)
    client = _logged_in(role_user("dana", "data scientist"))
    url = reverse("admin:experiments_experiment_create")
    bad = client.post(url, {"endpoint": "ab", "name": "x", "primary_metric": "clicks", "minimum_effect": 0.05,
                            "alpha": 0.05, "power": 0.8, "reason": "r"})  # fmt: skip
    assert bad.status_code == 200 and "is not one of" in bad.content.decode()
    made = client.post(url, {"endpoint": "ab", "name": "x", "primary_metric": "accuracy", "minimum_effect": 0.05,
                             "alpha": 0.05, "power": 0.8, "reason": "r", "guardrails": "[]"})  # fmt: skip
    experiment = Experiment.objects.get()
    assert made.status_code == 302 and experiment.created_by == "dana" and experiment.endpoint == endpoint
    start = reverse("admin:experiments_experiment_action", args=[experiment.pk, "start"])
    assert client.post(start, {"reason": "go"}).status_code == 302
    stop = reverse("admin:experiments_experiment_action", args=[experiment.pk, "stop"])
    assert client.post(stop, {"reason": "done"}).status_code == 302
    experiment.refresh_from_db()
    assert experiment.status == "stopped"
    sre = _logged_in(role_user("sam", "SRE"))
    refused = sre.post(url, {"endpoint": "ab", "name": "y", "primary_metric": "accuracy", "minimum_effect": 0.05,
                             "alpha": 0.05, "power": 0.8, "reason": "r"})  # fmt: skip
    assert refused.status_code == 403 and Experiment.objects.count() == 1


def test_the_api_gives_the_same_verdict_and_effect_history(running):
    _, experiment = running
    client = _logged_in(role_user("abel", "approver"))
    body = client.get(f"/api/v1/experiments/{experiment.pk}/").json()
    assert body["latest_look"]["outcomes"] == {"chall": "worse"}
    history = body["effect_history"]["chall"]
    assert len(history) == 2 and all(p["ci_high"] < 0 for p in history)
    assert body["plan"]["planned_units"]["champ"] > 0
    assert [e["id"] for e in client.get("/api/v1/experiments/?endpoint=ab").json()["results"]] == [
        experiment.pk
    ]
    assert client.get("/api/v1/experiments/999999/").status_code == 404


def test_the_api_creates_starts_analyses_and_refuses_with_the_error_body(serving):
    serving.endpoint("ab", TWO_ARMS)
    client = _logged_in(role_user("dana", "data scientist"))
    design = {"endpoint_name": "ab", "name": "api", "primary_metric": "accuracy", "minimum_effect": 0.05,
              "baseline_mean": 0.9, "reason": "from CI"}  # fmt: skip
    created = client.post("/api/v1/experiments/", design, content_type="application/json")
    assert created.status_code == 201, created.content
    pk = created.json()["id"]
    assert created.json()["status"] == "draft"
    started = client.post(
        f"/api/v1/experiments/{pk}/start/", {"reason": "go"}, content_type="application/json"
    )
    assert started.json()["status"] == "running"
    look = client.post(f"/api/v1/experiments/{pk}/analyze/")
    assert look.status_code == 201 and look.json()["outcomes"] == {"chall": "not_yet"}
    again = client.post(f"/api/v1/experiments/{pk}/start/", {"reason": "go"}, content_type="application/json")
    assert again.status_code == 409 and again.json()["error"]["code"] == "conflict"
    bad = client.post(
        "/api/v1/experiments/", {**design, "primary_metric": "clicks"}, content_type="application/json"
    )
    assert bad.status_code == 400 and "clicks" in bad.json()["error"]["message"]
    sre = _logged_in(role_user("sam", "SRE"))
    assert sre.post("/api/v1/experiments/", design, content_type="application/json").status_code == 403
    assert sre.post(f"/api/v1/experiments/{pk}/analyze/").status_code == 403


def test_the_openapi_schema_documents_the_experiment_routes(db):
    client = _logged_in(role_user("dana", "data scientist"))
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    for route in ("/api/v1/experiments/", "/api/v1/experiments/{id}/", "/api/v1/experiments/{id}/start/"):
        assert route in schema["paths"], sorted(schema["paths"])
    assert "ExperimentCreateInput" in schema["components"]["schemas"]
