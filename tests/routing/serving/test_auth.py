"""Service tokens: 401 without a valid one, 403 outside its scope or when overriding, 429 over its rate."""

from __future__ import annotations

import pytest
from django.core.management import call_command

from routing.governance.tokens import service_token_revoke, service_token_update
from routing.models import ServiceToken
from tests.routing.helpers import breast_rows

pytestmark = pytest.mark.django_db


COLUMNS, ROWS = breast_rows(1)
BODY = {"dataframe_split": {"columns": COLUMNS, "data": ROWS}}
TWO = [
    {"name": "champ", "role": "champion", "version": 1, "weight": 100},
    {"name": "chall", "role": "challenger", "version": 2, "weight": 0},
]


def _setup(serving):
    serving.endpoint("tok", TWO)
    serving.endpoint("other", TWO[:1])


def test_predict_without_a_valid_token_is_401(serving):
    _setup(serving)
    serving.token("good")
    serving.refresh()
    for header in ({}, {"authorization": "Basic abc"}, {"authorization": "Bearer "}):
        response = serving.client.post(
            "/predict/tok",
            BODY,
            content_type="application/json",
            **{f"HTTP_{k.upper()}": v for k, v in header.items()},
        )
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "unauthorized"
    assert serving.post("/predict/tok", BODY, "cpt_not-a-real-token").status_code == 401


def test_tokens_are_stored_hashed_and_the_command_prints_one_that_works(serving, capsys):
    _setup(serving)
    call_command("create_service_token", "cli", "--endpoint", "tok")
    raw = capsys.readouterr().out.strip()
    assert raw.startswith("cpt_") and len(raw) > 40
    stored = ServiceToken.objects.get(name="cli")
    assert raw not in (stored.token_hash, stored.prefix) and len(stored.token_hash) == 64
    serving.refresh()
    assert serving.post("/predict/tok", BODY, raw).status_code == 200


def test_a_token_scoped_to_another_endpoint_is_403(serving):
    _setup(serving)
    raw = serving.token("scoped", endpoints=["other"])
    serving.refresh()
    assert serving.post("/predict/other", BODY, raw).status_code == 200
    response = serving.post("/predict/tok", BODY, raw)
    assert response.status_code == 403 and "tok" in response.json()["error"]["message"]


def test_a_token_without_the_predict_scope_is_403_on_predict(serving):
    _setup(serving)
    feedback_only = serving.token("feedback-only", scopes=["feedback"])
    both = serving.token("both", scopes=["feedback", "predict"])
    serving.refresh()

    response = serving.post("/predict/tok", BODY, feedback_only)

    assert response.status_code == 403 and "'predict'" in response.json()["error"]["message"]
    assert serving.post("/predict/tok", BODY, both).status_code == 200


def test_a_scope_change_reaches_predict_after_the_next_refresh(serving):
    _setup(serving)
    raw = serving.token("narrowed")
    serving.refresh()
    assert serving.post("/predict/tok", BODY, raw).status_code == 200

    service_token_update(actor="system", name="narrowed", scopes=["batch"])
    serving.refresh()

    assert serving.post("/predict/tok", BODY, raw).status_code == 403


def test_a_revoked_token_is_refused_after_the_next_refresh(serving):
    _setup(serving)
    raw = serving.token("revoke-me")
    serving.refresh()
    assert serving.post("/predict/tok", BODY, raw).status_code == 200
    service_token_revoke(actor="system", name="revoke-me")
    serving.refresh()
    assert serving.post("/predict/tok", BODY, raw).status_code == 401


def test_x_variant_is_403_without_override_and_forces_the_variant_with_it(serving):
    _setup(serving)
    plain = serving.token("plain")
    admin = serving.token("admin", can_override=True)
    serving.refresh()
    response = serving.post("/predict/tok", BODY, plain, x_variant="chall")
    assert response.status_code == 403 and "X-Variant" in response.json()["error"]["message"]
    forced = serving.post("/predict/tok", BODY, admin, x_variant="chall")
    assert forced.status_code == 200 and forced["X-Variant"] == "chall" and forced["X-Model-Version"] == "2"
    unknown = serving.post("/predict/tok", BODY, admin, x_variant="nope")
    assert unknown.status_code == 400 and unknown.json()["error"]["code"] == "unknown_variant"


def test_a_token_over_its_rate_is_429(serving):
    _setup(serving)
    raw = serving.token("slow", rate_limit_per_second=2)
    fast = serving.token("fast", rate_limit_per_second=0)
    serving.refresh()
    statuses = [serving.post("/predict/tok", BODY, raw).status_code for _ in range(5)]
    # Five calls span at most two one-second windows, so at most four pass.
    assert 429 in statuses and set(statuses) <= {200, 429}
    assert statuses[0] == 200
    limited = next(
        r for r in [serving.post("/predict/tok", BODY, raw) for _ in range(3)] if r.status_code == 429
    )
    assert limited.json()["error"]["code"] == "rate_limited" and limited["Retry-After"] == "1"
    assert {serving.post("/predict/tok", BODY, fast).status_code for _ in range(10)} == {200}
