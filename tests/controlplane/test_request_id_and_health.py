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
def test_readyz_never_asks_the_database_and_tells_anonymous_callers_only_the_status(client, settings):
    settings.READINESS_CHECKS = [*settings.READINESS_CHECKS, "tests.controlplane.readiness_stub.not_ready"]
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json() == {"status": "not ready"}


@pytest.mark.django_db
def test_readyz_gives_staff_the_problems_and_details_every_check_reports(client, settings):
    from django.contrib.auth.models import User

    settings.READINESS_CHECKS = [*settings.READINESS_CHECKS, "tests.controlplane.readiness_stub.not_ready"]
    client.force_login(User.objects.create_user("ops", password="pw-ops-123", is_staff=True))
    body = client.get("/readyz").json()
    assert "stub says not ready" in body["problems"]
    assert body["stub"] == {"detail": "staff only"}
    assert "serving" in body


@pytest.mark.django_db
def test_a_readiness_check_that_raises_is_not_ready_not_a_500(client, settings):
    settings.READINESS_CHECKS = ["tests.controlplane.readiness_stub.no_such_check"]
    assert client.get("/readyz").status_code == 503
