from __future__ import annotations

import pytest


@pytest.mark.django_db
def test_every_response_carries_a_request_id(client):
    first = client.get("/healthz")
    second = client.get("/healthz")
    assert first.status_code == 200
    assert len(first["X-Request-ID"]) >= 16
    assert first["X-Request-ID"] != second["X-Request-ID"]


@pytest.mark.django_db
def test_a_well_formed_incoming_request_id_is_kept_and_a_hostile_one_replaced(client):
    assert client.get("/healthz", HTTP_X_REQUEST_ID="trace-1234abcd")["X-Request-ID"] == "trace-1234abcd"
    replaced = client.get("/healthz", HTTP_X_REQUEST_ID="<script>\nalert(1)")["X-Request-ID"]
    assert "<" not in replaced and "\n" not in replaced


@pytest.mark.django_db
def test_readyz_reports_the_database(client):
    response = client.get("/readyz")
    assert response.json()["problems"] == [] or response.status_code == 503
    assert "database unreachable" not in str(response.json()["problems"])


@pytest.mark.django_db
def test_readyz_fails_with_the_problem_a_readiness_check_reports(client, settings):
    settings.READINESS_CHECKS = [*settings.READINESS_CHECKS, "tests.controlplane.readiness_stub.not_ready"]
    response = client.get("/readyz")
    assert response.status_code == 503
    assert "stub says not ready" in response.json()["problems"]
