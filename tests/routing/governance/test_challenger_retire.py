"""Retiring a challenger: the champion takes its weight back, MLflow's alias follows, all audited."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from registry.models import AuditEvent, RegisteredModel
from routing.governance.errors import GovernanceError
from routing.governance.promotion import promotion_request
from routing.governance.services import challenger_retire, challenger_start, endpoint_create, shadow_set
from routing.models import PromotionRequest, Variant
from tests.routing.helpers import alias_pushes_applied, make_model, role_user

pytestmark = pytest.mark.django_db


def _roles() -> dict[str, tuple[str, int]]:
    return {v.name: (v.role, v.weight) for v in Variant.objects.filter(endpoint__name="ep")}


def _aliases(mlflow_server, name: str) -> dict[str, int]:
    alias_pushes_applied(name)  # aliases reach MLflow through the outbox, after commit
    return {a: int(v) for a, v in mlflow_server.client().get_registered_model(name).aliases.items()}


@pytest.fixture
def two_challengers(mlflow_server, trained_models, scientist):
    """Endpoint ``ep``: champion v1 at 45, challengers v2 at 15 and v3 at 40 (holding the alias); v4 free."""
    fresh_model = make_model(mlflow_server.client(), trained_models, layout="sxss")
    endpoint_create(actor="system", name="ep", model_name=fresh_model.name, champion_version=1, reason="r")
    challenger_start(actor=scientist, endpoint_name="ep", version=2, percent=25, reason="a")
    challenger_start(actor=scientist, endpoint_name="ep", version=3, percent=40, reason="b")
    assert _roles() == {"v1": ("champion", 45), "v2": ("challenger", 15), "v3": ("challenger", 40)}
    return fresh_model


def test_retiring_the_alias_holder_gives_its_weight_to_the_champion_and_moves_the_alias(
    two_challengers, scientist, mlflow_server
):
    assert _aliases(mlflow_server, two_challengers.name) == {"champion": 1, "challenger": 3}

    challenger_retire(actor=scientist, endpoint_name="ep", variant_name="v3", reason="loses on recall")

    assert _roles() == {"v1": ("champion", 85), "v2": ("challenger", 15), "v3": ("retired", 0)}
    assert _aliases(mlflow_server, two_challengers.name) == {"champion": 1, "challenger": 2}
    assert RegisteredModel.objects.get(name=two_challengers.name).aliases == {"champion": 1, "challenger": 2}
    tags = mlflow_server.client().get_model_version(two_challengers.name, "3").tags
    assert tags["controlplane.role"] == "retired"
    assert tags["controlplane.role_change_reason"] == "loses on recall"
    event = AuditEvent.objects.get(action="routing.challenger_retired")
    assert event.actor == "dana" and event.reason == "loses on recall"
    assert event.before["variants"]["v3"]["weight"] == 40 and "v3" not in event.after["variants"]
    assert event.after["variant"] == "v3"


def test_retiring_the_last_challenger_removes_the_alias(two_challengers, scientist, mlflow_server):
    challenger_retire(actor=scientist, endpoint_name="ep", variant_name="v2", reason="a")
    challenger_retire(actor=scientist, endpoint_name="ep", variant_name="v3", reason="b")

    assert _roles() == {"v1": ("champion", 100), "v2": ("retired", 0), "v3": ("retired", 0)}
    assert _aliases(mlflow_server, two_challengers.name) == {"champion": 1}


def test_a_pending_promotion_request_for_the_retired_challenger_is_superseded(two_challengers, scientist):
    request = promotion_request(actor=scientist, endpoint_name="ep", variant_name="v3", reason="wins")

    challenger_retire(actor=scientist, endpoint_name="ep", variant_name="v3", reason="changed my mind")

    request.refresh_from_db()
    assert request.status == PromotionRequest.Status.SUPERSEDED


@pytest.mark.parametrize(
    ("who", "variant", "reason", "code", "status"),
    [
        ("dana", "v1", "r", "not_a_challenger", 400),
        ("dana", "v4", "r", "not_a_challenger", 400),
        ("dana", "v9", "r", "variant_not_found", 400),
        ("dana", "v2", "  ", "reason_required", 400),
        ("sam", "v2", "r", "forbidden", 403),
    ],
)
def test_a_refused_retirement_changes_nothing(
    two_challengers, scientist, sre, who, variant, reason, code, status
):
    shadow_set(actor=scientist, endpoint_name="ep", version=4, mirror_percent=5, reason="watch")
    before, audits = _roles(), AuditEvent.objects.count()
    actor = {"dana": scientist, "sam": sre}[who]

    with pytest.raises(GovernanceError) as refused:
        challenger_retire(actor=actor, endpoint_name="ep", variant_name=variant, reason=reason)

    assert (refused.value.code, refused.value.status) == (code, status)
    assert _roles() == before and AuditEvent.objects.count() == audits


def test_the_api_retires_a_challenger_with_a_reason(two_challengers):
    client = APIClient()
    client.force_login(role_user("ci", "data scientist"))

    response = client.post("/api/v1/endpoints/ep/retire/", {"variant": "v2", "reason": "done"}, format="json")
    refused = client.post("/api/v1/endpoints/ep/retire/", {"variant": "v2", "reason": "again"}, format="json")

    assert response.status_code == 200, response.content
    assert {v["name"] for v in response.json()["variants"]} == {"v1", "v3"}
    assert refused.status_code == 400 and "only a challenger" in refused.json()["error"]["message"].lower()
