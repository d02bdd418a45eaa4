"""/readyz reads the current routing table: never rebuilds, reports its age, problems per endpoint.

Issue 10, item 3: it rebuilt the whole table and loaded models on every probe, under the
refresher's lock; a database blip or one broken endpoint took the pod out for everything; and
it showed database and load errors to anyone.

The rule (docs/kubernetes.md): ready when this worker has a table, confirmed against the database
within ``READINESS_MAX_TABLE_AGE_SECONDS``, and at least one active endpoint can serve (or there
is none to serve). A broken endpoint is listed, counted and alerted on, without taking the pod out.
"""

from __future__ import annotations

import time

import pytest

from routing.serving.table import TABLE
from tests.routing.helpers import role_user

pytestmark = pytest.mark.django_db

HEALTHY = [{"name": "champ", "role": "champion", "version": 1, "weight": 100}]
BROKEN = [{"name": "champ", "role": "champion", "version": 97, "weight": 100}]  # MLflow has no v97


@pytest.fixture
def staff_client(serving):
    from django.test import Client

    client = Client()
    client.force_login(role_user("sre-on-call", "SRE"))
    return client


def test_readyz_reads_the_table_without_a_query_or_a_rebuild(serving, django_assert_num_queries):
    serving.endpoint("ok", HEALTHY)
    built = serving.refresh()
    with django_assert_num_queries(0):
        response = serving.client.get("/readyz")
    assert response.status_code == 200
    assert TABLE.current() is built


def test_anonymous_gets_the_status_only_and_staff_the_details(serving, staff_client):
    serving.endpoint("ok", HEALTHY)
    serving.endpoint("dead", BROKEN)
    serving.refresh()
    anonymous = serving.client.get("/readyz")
    assert anonymous.json() == {"status": "ready"}
    detailed = staff_client.get("/readyz").json()
    assert detailed["status"] == "ready"
    endpoints = detailed["serving"]["endpoints"]
    assert endpoints["ok"] == {"active": True, "can_serve": True, "problems": []}
    assert endpoints["dead"]["can_serve"] is False
    assert "v97" in endpoints["dead"]["problems"][0] and "not loaded" in endpoints["dead"]["problems"][0]
    assert detailed["serving"]["table"]["age_seconds"] < 5
    assert isinstance(detailed["serving"]["table"]["generation"], int)


def test_one_endpoint_whose_champion_cannot_load_does_not_take_the_pod_out(serving, staff_client):
    serving.endpoint("ok", HEALTHY)
    serving.endpoint("dead", BROKEN)
    serving.refresh()
    assert serving.client.get("/readyz").status_code == 200
    problems = staff_client.get("/readyz").json()["problems"]
    assert any("dead" in p for p in problems) and not any(p.startswith("endpoint ok") for p in problems)


def test_not_ready_when_no_active_endpoint_can_serve(serving, staff_client):
    serving.endpoint("dead", BROKEN)
    serving.refresh()
    response = staff_client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["status"] == "not ready"
    assert serving.client.get("/readyz").json() == {"status": "not ready"}


def test_not_ready_before_the_first_table_and_the_probe_does_not_build_it(serving):
    serving.endpoint("ok", HEALTHY)
    TABLE.reset()
    assert serving.client.get("/readyz").status_code == 503
    assert TABLE.snapshot is None


def test_ready_while_the_table_is_fresh_enough_and_not_after(serving, settings, staff_client):
    serving.endpoint("ok", HEALTHY)
    settings.READINESS_MAX_TABLE_AGE_SECONDS = 0.5
    serving.refresh()
    assert serving.client.get("/readyz").status_code == 200
    time.sleep(0.7)  # no refresh confirmed the table against the database meanwhile
    stale = staff_client.get("/readyz")
    assert stale.status_code == 503
    assert any("older than" in p for p in stale.json()["problems"])
    serving.refresh()  # an unchanged table, confirmed again: fresh
    assert serving.client.get("/readyz").status_code == 200
