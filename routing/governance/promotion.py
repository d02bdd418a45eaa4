"""Promotion, approval and rollback: who is champion, changed atomically, locked and audited.

A challenger becomes champion directly (``endpoint_promote``) or, with four-eyes approval on, by
``promotion_request`` then a different user's ``promotion_approve`` (or ``promotion_reject``);
either way the promotion gate is checked and the old champion is kept as previous champion so
``endpoint_rollback`` can put it back in one step. Locking, auditing and the MLflow alias mirror
come from ``routing.governance.rules``, as for every governance service.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from routing.governance.aliases import mlflow_apply
from routing.governance.errors import GovernanceError
from routing.governance.permissions import Actor, permission_check
from routing.governance.rules import (
    endpoint_audit,
    endpoint_locked,
    endpoint_snapshot,
    gate_verdict,
    int_in_range,
    reason_required,
    variant_named,
    weights_must_serve,
)
from routing.governance.traffic_changes import traffic_change_apply
from routing.models import Endpoint, PromotionRequest, Variant, WorkerStatus

Role = Variant.Role


def _loaded_check(variant: Variant) -> dict[str, Any]:
    """The serving workers' verdict on the version as audit data; raises unless it can serve.

    Refused when any live worker (heartbeat within ``WORKER_STATUS_STALE_SECONDS``) failed to load
    it, or none has loaded it yet. With no live worker at all (tests, commands, every web pod down)
    nothing can be checked: the promotion goes ahead and the audit row says it was not verified.
    A remote variant is loaded by its own server, not by the workers.
    """
    if variant.backend != Variant.Backend.INPROCESS:
        return {}
    model, version = variant.endpoint.registered_model.name, variant.model_version.version
    live = list(WorkerStatus.objects.live())
    if not live:
        return {
            "workers": {"verified": False, "note": "no live worker reports its models: load not verified"}
        }
    for worker in live:
        if error := worker.failure(model, version):
            raise GovernanceError(
                "version_not_loaded",
                f"{model} v{version} failed to load on worker {worker.name}: {error}",
                status=409,
            )
    loaded_on = [w.name for w in live if w.holds(model, version)]
    if not loaded_on:
        raise GovernanceError(
            "version_not_loaded",
            f"no live worker has loaded {model} v{version} yet ({len(live)} live: "
            f"{', '.join(w.name for w in live)}); promote once the workers hold it",
            status=409,
        )
    return {"workers": {"verified": True, "loaded_on": sorted(loaded_on)}}


def _promotable(endpoint: Endpoint, variant_name: str) -> tuple[Variant, Variant]:
    variant = variant_named(endpoint, variant_name)
    if variant.role != Role.CHALLENGER:
        raise GovernanceError(
            "not_a_challenger",
            f"Only a challenger can be promoted; {variant.name!r} is a {variant.role}.",
            status=409,
        )
    if not variant.model_version.is_servable:
        raise GovernanceError("version_not_ready", f"{variant.model_version} is no longer servable.")
    champion = endpoint.variants.select_related("model_version").get(role=Role.CHAMPION)
    return variant, champion


def _promote(
    actor: Actor, endpoint: Endpoint, variant_name: str, reason: str, override: str, **extra: Any
) -> Variant:
    variant, champion = _promotable(endpoint, variant_name)
    verdict = {**gate_verdict(endpoint, variant, champion, override), **_loaded_check(variant)}
    before = endpoint_snapshot(endpoint)
    # Order matters: the partial unique constraints allow one champion and one previous champion
    # at every statement, so free each role before handing it on.
    endpoint.variants.filter(role=Role.PREVIOUS_CHAMPION).update(role=Role.RETIRED, weight=0)
    taken = champion.weight
    champion.role, champion.weight = Role.PREVIOUS_CHAMPION, 0
    champion.save(update_fields=["role", "weight", "updated_at"])
    variant.role, variant.weight = Role.CHAMPION, variant.weight + taken
    variant.save(update_fields=["role", "weight", "updated_at"])
    weights_must_serve(endpoint)
    # Any request still pending (an approved one is applied by now) was made for the old state.
    endpoint.promotion_requests.filter(status=PromotionRequest.Status.PENDING).update(
        status=PromotionRequest.Status.SUPERSEDED
    )
    endpoint_audit(
        actor, "endpoint_promoted", endpoint, before, reason, variant=variant.name, **verdict, **extra
    )
    mlflow_apply(endpoint, actor, reason, [variant, champion])
    return variant


@transaction.atomic
def endpoint_promote(
    *, actor: Actor, endpoint_name: str, variant_name: str, reason: str, gate_override_reason: str = ""
) -> Variant:
    """Make a challenger the champion; the old champion is kept as previous champion for rollback.

    The new champion takes the old champion's weight on top of its own. Refused while
    ``REQUIRE_PROMOTION_APPROVAL`` is on: then use ``promotion_request`` and ``promotion_approve``.
    """
    permission_check(actor, "endpoint_promote")
    reason = reason_required(reason)
    if settings.REQUIRE_PROMOTION_APPROVAL and not isinstance(actor, str):
        raise GovernanceError(
            "approval_required",
            "Promotions need a second person's approval here: request the promotion, then another "
            "user with the approver role approves it.",
            status=403,
        )
    endpoint = endpoint_locked(endpoint_name)
    return _promote(actor, endpoint, variant_name, reason, gate_override_reason)


@transaction.atomic
def promotion_request(
    *, actor: Actor, endpoint_name: str, variant_name: str, reason: str, gate_override_reason: str = ""
) -> PromotionRequest:
    """Ask for a challenger's promotion; a different user approves it (four-eyes rule)."""
    permission_check(actor, "promotion_request")
    reason = reason_required(reason)
    if isinstance(actor, str):
        raise GovernanceError("forbidden", "A promotion request needs a person as its requester.", status=403)
    endpoint = endpoint_locked(endpoint_name)
    variant, champion = _promotable(endpoint, variant_name)
    gate_verdict(endpoint, variant, champion, gate_override_reason)  # fail early, checked again on approval
    _loaded_check(variant)
    if endpoint.promotion_requests.filter(status=PromotionRequest.Status.PENDING).exists():
        raise GovernanceError(
            "conflict",
            f"Endpoint {endpoint.name!r} already has a pending request; decide it first.",
            status=409,
        )
    request = PromotionRequest.objects.create(
        endpoint=endpoint,
        variant=variant,
        reason=reason,
        gate_override_reason=gate_override_reason.strip(),
        requested_by=actor,
    )
    before = endpoint_snapshot(endpoint)
    endpoint_audit(
        actor, "promotion_requested", endpoint, before, reason, variant=variant.name, request=request.pk
    )
    return request


def _request_locked(request_id: Any) -> tuple[PromotionRequest, Endpoint]:
    pk = int_in_range(request_id, "promotion request id", 1)
    request = PromotionRequest.objects.filter(pk=pk).select_related("endpoint", "variant").first()
    if request is None:
        raise GovernanceError("not_found", f"There is no promotion request {pk}.", status=404)
    endpoint = endpoint_locked(request.endpoint.name)
    request = PromotionRequest.objects.select_for_update().get(pk=pk)
    if request.status != PromotionRequest.Status.PENDING:
        raise GovernanceError("conflict", f"Promotion request {pk} is already {request.status}.", status=409)
    return request, endpoint


@transaction.atomic
def promotion_approve(*, actor: Actor, request_id: int, reason: str = "") -> Variant:
    """A second person approves a pending request; the promotion (or traffic change) is applied at once."""
    permission_check(actor, "promotion_approve")
    request, endpoint = _request_locked(request_id)
    if not isinstance(actor, str) and actor.pk == request.requested_by_id:
        raise GovernanceError(
            "four_eyes", "You requested this promotion; a different user must approve it.", status=403
        )
    request.status, request.decided_by = (
        PromotionRequest.Status.APPLIED,
        None if isinstance(actor, str) else actor,
    )
    request.decided_at, request.decision_reason = timezone.now(), (reason or "").strip()
    request.save()
    why = request.reason + (f" (approved: {request.decision_reason})" if request.decision_reason else "")
    if request.kind == PromotionRequest.Kind.TRAFFIC:  # a split handing challengers most of the traffic
        return traffic_change_apply(actor, endpoint, request, why)
    return _promote(
        actor,
        endpoint,
        request.variant.name,
        why,
        request.gate_override_reason,
        request=request.pk,
        requested_by=request.requested_by.get_username(),
    )


@transaction.atomic
def promotion_reject(*, actor: Actor, request_id: int, reason: str) -> PromotionRequest:
    """Turn a pending promotion request down, with a reason."""
    permission_check(actor, "promotion_reject")
    reason = reason_required(reason)
    request, endpoint = _request_locked(request_id)
    request.status, request.decided_at, request.decision_reason = (
        PromotionRequest.Status.REJECTED,
        timezone.now(),
        reason,
    )
    request.decided_by = None if isinstance(actor, str) else actor
    request.save()
    endpoint_audit(
        actor, "promotion_rejected", endpoint, endpoint_snapshot(endpoint), reason, request=request.pk
    )
    return request


@transaction.atomic
def endpoint_rollback(*, actor: Actor, endpoint_name: str, reason: str) -> Variant:
    """Put the previous champion back in one step; the current champion is retired."""
    permission_check(actor, "endpoint_rollback")
    reason = reason_required(reason)
    endpoint = endpoint_locked(endpoint_name)
    previous = endpoint.variants.select_related("model_version").filter(role=Role.PREVIOUS_CHAMPION).first()
    if previous is None:
        raise GovernanceError(
            "nothing_to_roll_back",
            f"Endpoint {endpoint.name!r} has no previous champion to roll back to.",
            status=409,
        )
    if not previous.model_version.is_servable:
        raise GovernanceError("version_not_ready", f"{previous.model_version} is no longer servable.")
    champion = endpoint.variants.select_related("model_version").get(role=Role.CHAMPION)
    before = endpoint_snapshot(endpoint)
    taken = champion.weight
    champion.role, champion.weight = Role.RETIRED, 0
    champion.save(update_fields=["role", "weight", "updated_at"])
    previous.role, previous.weight = Role.CHAMPION, taken
    previous.save(update_fields=["role", "weight", "updated_at"])
    weights_must_serve(endpoint)
    endpoint_audit(actor, "endpoint_rolled_back", endpoint, before, reason, variant=previous.name)
    mlflow_apply(endpoint, actor, reason, [previous, champion])
    return previous
