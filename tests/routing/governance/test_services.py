from __future__ import annotations

import pytest
from django.contrib.auth.models import User

from registry.models import AuditEvent, ModelVersion, RegisteredModel
from registry.services import registry_sync
from routing.governance.promotion import (
    endpoint_promote,
    endpoint_rollback,
    promotion_approve,
    promotion_request,
)
from routing.governance.selectors import endpoint_variants, variant_shares
from routing.governance.services import (
    GovernanceError,
    challenger_start,
    endpoint_create,
    endpoint_pause,
    endpoint_resume,
    shadow_remove,
    shadow_set,
    traffic_split_set,
)
from routing.models import Endpoint, PromotionRequest, Variant
from tests.routing.helpers import alias_pushes_applied

pytestmark = pytest.mark.django_db


def _roles(endpoint_name: str) -> dict[str, tuple[str, int, int]]:
    return {
        v.name: (v.role, v.model_version.version, v.weight)
        for v in Variant.objects.filter(endpoint__name=endpoint_name).select_related("model_version")
    }


def _mlflow_aliases(mlflow_server, name: str) -> dict[str, int]:
    alias_pushes_applied(name)  # aliases reach MLflow through the outbox, after commit
    return {a: int(v) for a, v in mlflow_server.client().get_registered_model(name).aliases.items()}


def _endpoint(fresh_model, name: str = "ep", **kwargs) -> Endpoint:
    return endpoint_create(
        actor="system", name=name, model_name=fresh_model.name, champion_version=1, reason="launch", **kwargs
    )


def test_creating_an_endpoint_gives_its_champion_all_traffic_and_the_champion_alias(
    fresh_model, mlflow_server
):
    endpoint = _endpoint(fresh_model)

    assert _roles("ep") == {"v1": ("champion", 1, 100)}
    assert _mlflow_aliases(mlflow_server, fresh_model.name) == {"champion": 1}
    assert RegisteredModel.objects.get(name=fresh_model.name).aliases == {"champion": 1}
    event = AuditEvent.objects.get(action="routing.endpoint_created")
    assert event.object_id == str(endpoint.pk) and event.reason == "launch"


def test_a_challenger_started_at_20_percent_gets_a_fifth_of_the_traffic(
    fresh_model, mlflow_server, scientist
):
    _endpoint(fresh_model)

    challenger_start(actor=scientist, endpoint_name="ep", version=2, percent=20, reason="try xgboost")

    assert _roles("ep") == {"v1": ("champion", 1, 80), "v2": ("challenger", 2, 20)}
    shares = variant_shares(variants=endpoint_variants(endpoint=Endpoint.objects.get(name="ep")))
    assert shares == {"v1": pytest.approx(0.8), "v2": pytest.approx(0.2)}
    assert _mlflow_aliases(mlflow_server, fresh_model.name) == {"champion": 1, "challenger": 2}
    tags = mlflow_server.client().get_model_version(fresh_model.name, "2").tags
    assert tags["controlplane.role"] == "challenger"
    assert tags["controlplane.role_changed_by"] == "dana"
    assert tags["controlplane.role_change_reason"] == "try xgboost"
    event = AuditEvent.objects.get(action="routing.challenger_started")
    assert event.actor == "dana"
    assert event.before["variants"] == {
        "v1": {"role": "champion", "version": 1, "weight": 100, "mirror_percent": 0}
    }
    assert event.after["variants"]["v2"]["weight"] == 20


def test_a_sync_before_or_after_the_alias_push_sees_no_external_change(fresh_model, scientist):
    _endpoint(fresh_model)
    alias_pushes_applied(fresh_model.name)
    challenger_start(actor=scientist, endpoint_name="ep", version=2, percent=20, reason="try")

    pending = registry_sync(model_name=fresh_model.name)  # the push has not reached MLflow yet
    alias_pushes_applied(fresh_model.name)
    after = registry_sync(model_name=fresh_model.name)

    assert pending.alias_changes == [] and after.alias_changes == [] and after.updated == []
    assert ModelVersion.objects.get(registered_model__name=fresh_model.name, version=2).aliases == [
        "challenger"
    ]


def test_a_third_challenger_keeps_the_others_in_proportion(fresh_model, scientist):
    _endpoint(fresh_model)
    challenger_start(actor=scientist, endpoint_name="ep", version=2, percent=20, reason="a")

    challenger_start(actor=scientist, endpoint_name="ep", version=3, percent=50, reason="b")

    assert _roles("ep") == {
        "v1": ("champion", 1, 40),
        "v2": ("challenger", 2, 10),
        "v3": ("challenger", 3, 50),
    }


def test_the_split_is_set_all_at_once_and_audited(fresh_model, scientist, mlflow_server):
    _endpoint(fresh_model)
    challenger_start(actor=scientist, endpoint_name="ep", version=2, percent=20, reason="a")

    traffic_split_set(actor=scientist, endpoint_name="ep", weights={"v1": 1, "v2": 3}, reason="ramp up")

    assert _roles("ep") == {"v1": ("champion", 1, 1), "v2": ("challenger", 2, 3)}
    event = AuditEvent.objects.filter(action="routing.traffic_split_set").get()
    assert event.before["variants"]["v2"]["weight"] == 20 and event.after["variants"]["v2"]["weight"] == 3
    assert event.reason == "ramp up"


def test_promotion_keeps_the_old_champion_for_a_one_step_rollback(fresh_model, scientist, sre, mlflow_server):
    _endpoint(fresh_model)
    challenger_start(actor=scientist, endpoint_name="ep", version=3, percent=20, reason="a")

    endpoint_promote(actor=scientist, endpoint_name="ep", variant_name="v3", reason="better on holdout")

    assert _roles("ep") == {"v1": ("previous_champion", 1, 0), "v3": ("champion", 3, 100)}
    assert _mlflow_aliases(mlflow_server, fresh_model.name) == {"champion": 3}
    tags = mlflow_server.client().get_model_version(fresh_model.name, "3").tags
    assert tags["controlplane.promoted_by"] == "dana"
    assert tags["controlplane.promotion_reason"] == "better on holdout"
    assert tags["controlplane.promoted_at"]

    endpoint_rollback(actor=sre, endpoint_name="ep", reason="latency regression")

    assert _roles("ep") == {"v1": ("champion", 1, 100), "v3": ("retired", 3, 0)}
    assert _mlflow_aliases(mlflow_server, fresh_model.name) == {"champion": 1}
    assert (
        mlflow_server.client().get_model_version(fresh_model.name, "3").tags["controlplane.role"] == "retired"
    )
    rollback = AuditEvent.objects.get(action="routing.endpoint_rolled_back")
    assert rollback.actor == "sam" and rollback.reason == "latency regression"
    assert registry_sync(model_name=fresh_model.name).alias_changes == []


def test_the_gate_blocks_a_worse_challenger_unless_overridden_with_a_reason(fresh_model, scientist):
    mv = {v.version: v.metrics["val_auc"] for v in fresh_model.row.versions.all()}
    worse = min(mv, key=mv.get)
    champion = max(mv, key=mv.get)
    assert mv[worse] < mv[champion]
    endpoint_create(
        actor="system",
        name="gated",
        model_name=fresh_model.name,
        champion_version=champion,
        reason="launch",
        gate_metric="val_auc",
    )
    challenger_start(actor=scientist, endpoint_name="gated", version=worse, percent=10, reason="a")

    with pytest.raises(GovernanceError) as err:
        endpoint_promote(actor=scientist, endpoint_name="gated", variant_name=f"v{worse}", reason="ship it")
    assert err.value.code == "gate_failed" and "val_auc" in err.value.message

    endpoint_promote(
        actor=scientist,
        endpoint_name="gated",
        variant_name=f"v{worse}",
        reason="ship it",
        gate_override_reason="calibration matters more here",
    )
    event = AuditEvent.objects.get(action="routing.endpoint_promoted")
    assert event.after["gate"]["passed"] is False
    assert event.after["gate"]["override_reason"] == "calibration matters more here"


def test_four_eyes_promotion_needs_a_second_person(fresh_model, scientist, approver, settings, mlflow_server):
    settings.REQUIRE_PROMOTION_APPROVAL = True
    _endpoint(fresh_model)
    challenger_start(actor=scientist, endpoint_name="ep", version=3, percent=20, reason="a")
    with pytest.raises(GovernanceError) as err:
        endpoint_promote(actor=scientist, endpoint_name="ep", variant_name="v3", reason="now")
    assert err.value.code == "approval_required" and err.value.status == 403

    request = promotion_request(actor=scientist, endpoint_name="ep", variant_name="v3", reason="wins A/B")
    with pytest.raises(GovernanceError) as err:
        promotion_approve(actor=scientist, request_id=request.pk)
    assert err.value.status == 403
    assert _roles("ep")["v3"][0] == "challenger"

    promotion_approve(actor=approver, request_id=request.pk, reason="looked at the dashboards")

    assert _roles("ep")["v3"][0] == "champion"
    request.refresh_from_db()
    assert request.status == PromotionRequest.Status.APPLIED and request.decided_by == approver
    event = AuditEvent.objects.get(action="routing.endpoint_promoted")
    assert event.actor == "abel" and event.after["requested_by"] == "dana"
    assert _mlflow_aliases(mlflow_server, fresh_model.name) == {"champion": 3}


def test_the_requester_cannot_approve_their_own_request_even_as_an_approver(
    fresh_model, scientist, approver, settings
):
    settings.REQUIRE_PROMOTION_APPROVAL = True
    _endpoint(fresh_model)
    both = User.objects.create_user("both", password="x")
    both.groups.add(*scientist.groups.all(), *approver.groups.all())
    challenger_start(actor=both, endpoint_name="ep", version=2, percent=20, reason="a")
    request = promotion_request(actor=both, endpoint_name="ep", variant_name="v2", reason="mine")

    with pytest.raises(GovernanceError) as err:
        promotion_approve(actor=both, request_id=request.pk)

    assert err.value.code == "four_eyes"
    assert _roles("ep")["v2"][0] == "challenger"


def test_roles_are_enforced_by_the_services(fresh_model, scientist, sre, approver):
    _endpoint(fresh_model)
    challenger_start(actor=scientist, endpoint_name="ep", version=2, percent=20, reason="a")
    with pytest.raises(GovernanceError) as err:
        endpoint_rollback(actor=scientist, endpoint_name="ep", reason="x")
    assert err.value.status == 403 and "rollback_endpoint" in err.value.message
    with pytest.raises(GovernanceError):
        challenger_start(actor=sre, endpoint_name="ep", version=3, percent=20, reason="a")
    with pytest.raises(GovernanceError):
        traffic_split_set(actor=approver, endpoint_name="ep", weights={"v1": 1, "v2": 1}, reason="x")
    assert _roles("ep") == {"v1": ("champion", 1, 80), "v2": ("challenger", 2, 20)}


def test_pause_and_resume_are_audited(fresh_model, sre):
    _endpoint(fresh_model)
    endpoint_pause(actor=sre, endpoint_name="ep", reason="incident 42")
    assert Endpoint.objects.get(name="ep").is_active is False
    endpoint_resume(actor=sre, endpoint_name="ep", reason="fixed")
    assert Endpoint.objects.get(name="ep").is_active is True
    assert list(AuditEvent.objects.filter(object_type="endpoint").values_list("action", flat=True)[:2]) == [
        "routing.endpoint_resumed",
        "routing.endpoint_paused",
    ]


def test_a_shadow_mirrors_a_percentage_and_can_be_removed(fresh_model, scientist, mlflow_server):
    _endpoint(fresh_model)
    shadow_set(actor=scientist, endpoint_name="ep", version=2, mirror_percent=30, reason="watch")
    assert Variant.objects.get(name="v2").mirror_percent == 30
    shadow_set(actor=scientist, endpoint_name="ep", version=2, mirror_percent=50, reason="more")
    assert Variant.objects.get(name="v2").mirror_percent == 50
    assert "challenger" not in _mlflow_aliases(mlflow_server, fresh_model.name)

    shadow_remove(actor=scientist, endpoint_name="ep", variant_name="v2", reason="seen enough")

    assert _roles("ep")["v2"] == ("retired", 2, 0)
