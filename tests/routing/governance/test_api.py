from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from registry.models import AuditEvent, ModelVersion
from registry.services import registry_sync
from routing.governance.services import challenger_start, endpoint_create, shadow_set
from routing.models import Variant
from tests.routing.helpers import make_model, role_user

pytestmark = pytest.mark.django_db


@pytest.fixture(scope="module")
def api_model(mlflow_server, trained_models):
    """One MLflow model for the whole module: v1 champion, v2 challenger, v3 shadow, v4 to break, v5 free."""
    return make_model(mlflow_server.client(), trained_models, layout="sxsss", sync=False)


@pytest.fixture
def ep(api_model):
    """Endpoint ``ep``: champion v1 at 80, challenger v2 at 20, shadow v3 at 10 %; v4 FAILED."""
    registry_sync(model_name=api_model.name)
    endpoint_create(actor="system", name="ep", model_name=api_model.name, champion_version=1, reason="r")
    challenger_start(actor="system", endpoint_name="ep", version=2, percent=20, reason="r")
    shadow_set(actor="system", endpoint_name="ep", version=3, mirror_percent=10, reason="r")
    # MLflow cannot be made to fail a registration on demand; the mirror row is what we check.
    ModelVersion.objects.filter(registered_model__name=api_model.name, version=4).update(
        status="FAILED_REGISTRATION"
    )
    return api_model


def _client(user: User) -> APIClient:
    client = APIClient()
    client.force_login(user)
    return client


def _state() -> list[tuple]:
    return sorted(Variant.objects.values_list("name", "role", "weight", "mirror_percent"))


R = {"reason": "because"}
INVALID = [
    # (case, user, path under /api/v1/, body, status, words the message must contain)
    ("weights sum to zero", "root", "endpoints/ep/split/", {"weights": {"v1": 0, "v2": 0}, **R}, 400, "zero"),
    ("negative weight", "root", "endpoints/ep/split/", {"weights": {"v1": -1, "v2": 5}, **R}, 400, "at least 0"),
    ("weight not a number", "root", "endpoints/ep/split/", {"weights": {"v1": "x", "v2": 1}, **R}, 400, "weights"),
    ("split names a shadow", "root", "endpoints/ep/split/", {"weights": {"v1": 1, "v2": 1, "v3": 1}, **R}, 400,
     "v3: not a champion or challenger"),
    ("split misses a variant", "root", "endpoints/ep/split/", {"weights": {"v1": 1}, **R}, 400, "missing v2"),
    ("empty split", "root", "endpoints/ep/split/", {"weights": {}, **R}, 400, "non-empty"),
    ("split without reason", "root", "endpoints/ep/split/", {"weights": {"v1": 1, "v2": 1}}, 400, "reason"),
    ("version of another model", "root", "endpoints/ep/challengers/",
     {"version": 1, "percent": 10, "model_name": "test-sklearn", **R}, 400, "another model"),
    ("FAILED version", "root", "endpoints/ep/challengers/", {"version": 4, "percent": 10, **R}, 400,
     "FAILED_REGISTRATION"),
    ("unknown version", "root", "endpoints/ep/challengers/", {"version": 99, "percent": 10, **R}, 400,
     "no version 99"),
    ("challenger at 0 %", "root", "endpoints/ep/challengers/", {"version": 5, "percent": 0, **R}, 400,
     "between 1 and 99"),
    ("challenger at 100 %", "root", "endpoints/ep/challengers/", {"version": 2, "percent": 100, **R}, 400,
     "between 1 and 99"),
    ("version already serving", "root", "endpoints/ep/challengers/", {"version": 2, "percent": 10, **R}, 409,
     "already serves"),
    ("blank reason", "root", "endpoints/ep/challengers/", {"version": 5, "percent": 10, "reason": "  "}, 400,
     "reason"),
    ("remote backend without URL", "root", "endpoints/ep/challengers/",
     {"version": 5, "percent": 10, "backend": "remote", **R}, 400, "remote backend needs"),
    ("promoting a shadow", "root", "endpoints/ep/promote/", {"variant": "v3", **R}, 409,
     "Only a challenger can be promoted; 'v3' is a shadow"),
    ("promoting the champion", "root", "endpoints/ep/promote/", {"variant": "v1", **R}, 409, "is a champion"),
    ("promoting an unknown variant", "root", "endpoints/ep/promote/", {"variant": "v9", **R}, 400,
     "no variant named 'v9'"),
    ("promotion without reason", "root", "endpoints/ep/promote/", {"variant": "v2"}, 400, "reason"),
    ("unknown endpoint", "root", "endpoints/nope/promote/", {"variant": "v2", **R}, 404, "no endpoint named 'nope'"),
    ("rollback with no previous champion", "root", "endpoints/ep/rollback/", R, 409, "no previous champion"),
    ("mirror above 100 %", "root", "endpoints/ep/shadows/", {"version": 3, "mirror_percent": 101, **R}, 400,
     "between 1 and 100"),
    ("removing a non-shadow", "root", "endpoints/ep/shadows/remove/", {"variant": "v2", **R}, 400, "not a shadow"),
    ("resuming an active endpoint", "root", "endpoints/ep/resume/", R, 409, "already active"),
    ("approving an unknown request", "root", "promotion-requests/999/approve/", {}, 404, "no promotion request"),
    ("duplicate endpoint", "root", "endpoints/",
     {"name": "ep", "model_name": "x", "champion_version": 1, **R}, 409, "already exists"),
    ("endpoint name not a slug", "root", "endpoints/",
     {"name": "Bad Name", "model_name": "x", "champion_version": 1, **R}, 400, "slug"),
    ("SRE starting a challenger", "sre", "endpoints/ep/challengers/", {"version": 5, "percent": 10, **R}, 403,
     "routing.start_challenger"),
    ("data scientist rolling back", "scientist", "endpoints/ep/rollback/", R, 403, "routing.rollback_endpoint"),
    ("approver pausing", "approver", "endpoints/ep/pause/", R, 403, "routing.pause_endpoint"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("case", "who", "path", "body", "status", "words"), INVALID, ids=[c[0] for c in INVALID]
)
def test_invalid_input_gets_a_clear_4xx_and_changes_nothing(ep, case, who, path, body, status, words):
    users = {
        "root": lambda: User.objects.create_superuser("root", password="pw"),
        "sre": lambda: role_user("sam", "SRE"),
        "scientist": lambda: role_user("dana", "data scientist"),
        "approver": lambda: role_user("abel", "approver"),
    }
    before, audits = _state(), AuditEvent.objects.count()

    response = _client(users[who]()).post(f"/api/v1/{path}", body, format="json")

    assert response.status_code == status, response.content
    error = response.json()["error"]
    assert words in error["message"], error
    assert _state() == before
    assert AuditEvent.objects.count() == audits


def test_a_pipeline_with_a_token_starts_a_challenger_and_sees_the_shares(ep):
    user = role_user("ci-bot", "data scientist", staff=False)
    token = Token.objects.create(user=user)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")

    response = client.post(
        "/api/v1/endpoints/ep/split/", {"weights": {"v1": 3, "v2": 1}, "reason": "ramp"}, format="json"
    )

    assert response.status_code == 200, response.content
    variants = {v["name"]: v for v in response.json()["variants"]}
    assert variants["v1"]["share"] == pytest.approx(0.75)
    assert variants["v2"]["share"] == pytest.approx(0.25)
    assert variants["v3"]["role"] == "shadow" and variants["v3"]["mirror_percent"] == 10
    audit = client.get(
        "/api/v1/audit-events/", {"endpoint": "ep", "action": "routing.traffic_split_set"}
    ).json()
    assert audit["count"] == 1 and audit["results"][0]["actor"] == "ci-bot"


def test_the_api_refuses_anonymous_callers(ep):
    response = APIClient().get("/api/v1/endpoints/")
    assert response.status_code in (401, 403)
    bad = APIClient()
    bad.credentials(HTTP_AUTHORIZATION="Token not-a-token")
    assert bad.get("/api/v1/endpoints/").status_code in (401, 403)


def test_four_eyes_through_the_api(ep, settings):
    settings.REQUIRE_PROMOTION_APPROVAL = True
    scientist, approver = role_user("dana", "data scientist"), role_user("abel", "approver")
    body = {"variant": "v2", "reason": "wins"}
    assert _client(scientist).post("/api/v1/endpoints/ep/promote/", body, format="json").status_code == 403

    created = _client(scientist).post("/api/v1/endpoints/ep/promotion-requests/", body, format="json")
    assert created.status_code == 201, created.content
    request_id = created.json()["id"]
    own = _client(scientist).post(f"/api/v1/promotion-requests/{request_id}/approve/", {}, format="json")
    assert own.status_code == 403

    approved = _client(approver).post(f"/api/v1/promotion-requests/{request_id}/approve/", {}, format="json")

    assert approved.status_code == 200, approved.content
    roles = {v["name"]: v["role"] for v in approved.json()["variants"]}
    assert roles == {"v2": "champion", "v3": "shadow"}


def test_listings_cover_endpoints_variants_versions_and_audit(ep):
    client = _client(role_user("sam", "SRE"))
    assert client.get("/api/v1/endpoints/ep/").json()["registered_model"] == ep.name
    variants = client.get("/api/v1/variants/", {"endpoint": "ep"}).json()["results"]
    assert {v["name"] for v in variants} == {"v1", "v2", "v3"}
    versions = client.get("/api/v1/versions/", {"model": ep.name}).json()["results"]
    assert {v["version"] for v in versions} == {1, 2, 3, 4, 5}
    assert client.get("/api/v1/audit-events/", {"endpoint": "ep"}).json()["count"] == 3
    assert client.get("/api/v1/endpoints/nope/").status_code == 404


def test_the_openapi_schema_names_the_governed_operations(db):
    client = _client(User.objects.create_superuser("root", password="pw"))
    response = client.get("/api/schema/", {"format": "json"})
    assert response.status_code == 200
    paths = response.json()["paths"]
    for path in ("/api/v1/endpoints/{name}/promote/", "/api/v1/endpoints/{name}/split/",
                 "/api/v1/promotion-requests/{id}/approve/", "/api/v1/audit-events/"):  # fmt: skip
        assert path in paths, sorted(paths)
