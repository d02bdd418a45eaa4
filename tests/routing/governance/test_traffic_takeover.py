"""A split that hands challengers most of the traffic is gated and approved like a promotion (issue 10, item 8).

Before the fix, ``traffic_split_set`` let one person give a challenger 100 % (champion 0) with
four-eyes on, and no gate was checked.
"""

from __future__ import annotations

import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from registry.models import AuditEvent
from routing.governance.promotion import promotion_approve, promotion_reject
from routing.governance.services import GovernanceError, challenger_start, endpoint_create, traffic_split_set
from routing.governance.traffic_changes import traffic_change_request
from routing.models import Endpoint, PromotionRequest, Variant

pytestmark = pytest.mark.django_db


def _weights(endpoint: str = "ep") -> dict[str, int]:
    return dict(
        Variant.objects.filter(endpoint__name=endpoint, role__in=Variant.WEIGHTED_ROLES).values_list(
            "name", "weight"
        )
    )


def _ep(fresh_model, **kwargs) -> Endpoint:
    endpoint = endpoint_create(
        actor="system", name="ep", model_name=fresh_model.name, champion_version=1, reason="launch", **kwargs
    )
    challenger_start(actor="system", endpoint_name="ep", version=2, percent=20, reason="try")
    return endpoint


def _gated(fresh_model) -> tuple[int, int]:
    """Endpoint ``gated`` on val_auc: the best version is champion, the worst a 10 % challenger."""
    auc = {v.version: v.metrics["val_auc"] for v in fresh_model.row.versions.all()}
    worse, best = min(auc, key=auc.get), max(auc, key=auc.get)
    assert auc[worse] < auc[best]
    endpoint_create(
        actor="system",
        name="gated",
        model_name=fresh_model.name,
        champion_version=best,
        reason="launch",
        gate_metric="val_auc",
    )
    challenger_start(actor="system", endpoint_name="gated", version=worse, percent=10, reason="try")
    return best, worse


def test_with_four_eyes_one_person_cannot_give_a_challenger_all_the_traffic(fresh_model, scientist, settings):
    settings.REQUIRE_PROMOTION_APPROVAL = True
    _ep(fresh_model)

    with pytest.raises(GovernanceError) as err:
        traffic_split_set(actor=scientist, endpoint_name="ep", weights={"v1": 0, "v2": 100}, reason="all in")

    assert err.value.code == "approval_required" and err.value.status == 403
    assert "GOVERNANCE_MAX_CHALLENGER_SHARE" in err.value.message and "traffic-requests" in err.value.message
    assert _weights() == {"v1": 80, "v2": 20}
    assert not AuditEvent.objects.filter(action="routing.traffic_split_set").exists()


def test_with_four_eyes_starting_a_challenger_above_the_share_is_refused_too(
    fresh_model, scientist, settings
):
    settings.REQUIRE_PROMOTION_APPROVAL = True
    _ep(fresh_model)

    with pytest.raises(GovernanceError) as err:
        challenger_start(actor=scientist, endpoint_name="ep", version=3, percent=60, reason="big bet")

    assert err.value.code == "approval_required"
    assert _weights() == {"v1": 80, "v2": 20}


def test_with_four_eyes_a_split_that_leaves_the_champion_the_majority_needs_no_approval(
    fresh_model, scientist, settings
):
    settings.REQUIRE_PROMOTION_APPROVAL = True
    _ep(fresh_model)

    traffic_split_set(actor=scientist, endpoint_name="ep", weights={"v1": 50, "v2": 50}, reason="even")
    traffic_split_set(actor=scientist, endpoint_name="ep", weights={"v1": 60, "v2": 40}, reason="back")
    challenger_start(actor=scientist, endpoint_name="ep", version=3, percent=10, reason="third")

    assert _weights() == {"v1": 54, "v2": 36, "v3": 10}
    # Challengers together count: a third one that would leave the champion 45 % is a takeover.
    with pytest.raises(GovernanceError):
        traffic_split_set(
            actor=scientist, endpoint_name="ep", weights={"v1": 45, "v2": 45, "v3": 10}, reason="x"
        )


def test_the_share_is_a_setting(fresh_model, scientist, settings):
    settings.REQUIRE_PROMOTION_APPROVAL = True
    settings.GOVERNANCE_MAX_CHALLENGER_SHARE = 80
    _ep(fresh_model)

    traffic_split_set(actor=scientist, endpoint_name="ep", weights={"v1": 30, "v2": 70}, reason="ramp")
    with pytest.raises(GovernanceError):
        traffic_split_set(actor=scientist, endpoint_name="ep", weights={"v1": 10, "v2": 90}, reason="more")

    assert _weights() == {"v1": 30, "v2": 70}


def test_a_traffic_change_requested_by_one_person_is_applied_when_another_approves_it(
    fresh_model, scientist, approver, settings
):
    settings.REQUIRE_PROMOTION_APPROVAL = True
    _ep(fresh_model)

    request = traffic_change_request(
        actor=scientist, endpoint_name="ep", weights={"v1": 0, "v2": 100}, reason="v2 wins the A/B test"
    )
    assert request.kind == PromotionRequest.Kind.TRAFFIC and request.variant.name == "v2"
    assert _weights() == {"v1": 80, "v2": 20}  # nothing changes before the approval
    with pytest.raises(GovernanceError) as err:
        promotion_approve(actor=scientist, request_id=request.pk)
    assert err.value.status == 403

    promotion_approve(actor=approver, request_id=request.pk, reason="checked the dashboards")

    assert _weights() == {"v1": 0, "v2": 100}
    request.refresh_from_db()
    assert request.status == PromotionRequest.Status.APPLIED and request.decided_by == approver
    applied = AuditEvent.objects.get(action="routing.traffic_split_set")
    assert applied.actor == "abel" and applied.after["requested_by"] == "dana"
    assert applied.after["takeover"]["challenger_share"] == 1.0
    assert AuditEvent.objects.filter(action="routing.traffic_change_requested", actor="dana").exists()


def test_a_rejected_traffic_change_changes_nothing(fresh_model, scientist, approver, settings):
    settings.REQUIRE_PROMOTION_APPROVAL = True
    _ep(fresh_model)
    request = traffic_change_request(
        actor=scientist, endpoint_name="ep", weights={"v1": 10, "v2": 90}, reason="ramp"
    )

    promotion_reject(actor=approver, request_id=request.pk, reason="not yet")

    assert _weights() == {"v1": 80, "v2": 20}
    request.refresh_from_db()
    assert request.status == PromotionRequest.Status.REJECTED


def test_a_split_handing_challengers_most_traffic_must_pass_the_promotion_gate(fresh_model, scientist):
    best, worse = _gated(fresh_model)
    split = {f"v{best}": 40, f"v{worse}": 60}

    with pytest.raises(GovernanceError) as err:
        traffic_split_set(actor=scientist, endpoint_name="gated", weights=split, reason="ramp")
    assert err.value.code == "gate_failed" and "val_auc" in err.value.message
    assert _weights("gated") == {f"v{best}": 90, f"v{worse}": 10}

    traffic_split_set(
        actor=scientist,
        endpoint_name="gated",
        weights=split,
        reason="ramp",
        gate_override_reason="latency matters more than AUC here",
    )

    assert _weights("gated") == split
    gate = AuditEvent.objects.get(action="routing.traffic_split_set").after["takeover"]["gates"][f"v{worse}"]
    assert gate["passed"] is False and gate["override_reason"] == "latency matters more than AUC here"


def test_below_the_share_a_worse_challenger_needs_no_gate(fresh_model, scientist):
    best, worse = _gated(fresh_model)

    traffic_split_set(
        actor=scientist, endpoint_name="gated", weights={f"v{best}": 50, f"v{worse}": 50}, reason="even"
    )

    assert _weights("gated") == {f"v{best}": 50, f"v{worse}": 50}


def test_starting_a_worse_challenger_above_the_share_must_pass_the_gate(fresh_model, scientist):
    auc = {v.version: v.metrics["val_auc"] for v in fresh_model.row.versions.all()}
    endpoint_create(
        actor="system",
        name="gated",
        model_name=fresh_model.name,
        champion_version=max(auc, key=auc.get),
        reason="launch",
        gate_metric="val_auc",
    )

    with pytest.raises(GovernanceError) as err:
        challenger_start(
            actor=scientist, endpoint_name="gated", version=min(auc, key=auc.get), percent=70, reason="x"
        )

    assert err.value.code == "gate_failed"
    assert list(_weights("gated").values()) == [100]


def test_the_api_takes_a_traffic_change_request_and_an_approval(fresh_model, scientist, approver, settings):
    settings.REQUIRE_PROMOTION_APPROVAL = True
    _ep(fresh_model)
    asking, deciding = APIClient(), APIClient()
    asking.force_login(scientist)
    deciding.force_login(approver)
    body = {"weights": {"v1": 20, "v2": 80}, "reason": "ramp to 80"}

    refused = asking.post("/api/v1/endpoints/ep/split/", body, format="json")
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "approval_required"
    created = asking.post("/api/v1/endpoints/ep/traffic-requests/", body, format="json")
    assert created.status_code == 201, created.content
    assert created.json()["kind"] == "traffic" and created.json()["weights"] == {"v1": 20, "v2": 80}

    approved = deciding.post(f"/api/v1/promotion-requests/{created.json()['id']}/approve/", {}, format="json")

    assert approved.status_code == 200, approved.content
    assert {v["name"]: v["weight"] for v in approved.json()["variants"]} == {"v1": 20, "v2": 80}


def test_the_admin_offers_request_traffic_change_with_four_eyes(client, fresh_model, scientist, settings):
    settings.REQUIRE_PROMOTION_APPROVAL = True
    endpoint = _ep(fresh_model)
    client.force_login(scientist)
    page = client.get(reverse("admin:routing_endpoint_change", args=[endpoint.pk])).content.decode()
    assert 'id="action-request_split"' in page
    url = reverse("admin:routing_endpoint_action", args=[endpoint.pk, "request_split"])

    response = client.post(url, {"weight_v1": 10, "weight_v2": 90, "reason": "ramp"})

    assert response.status_code == 302
    request = PromotionRequest.objects.get(endpoint=endpoint)
    assert request.weights == {"v1": 10, "v2": 90} and request.status == PromotionRequest.Status.PENDING
    page = client.get(reverse("admin:routing_endpoint_change", args=[endpoint.pk])).content.decode()
    assert "split v1 10, v2 90" in page
