"""Traffic changes that hand challengers most of the live traffic: gated and approved like a promotion.

A split in which the non-champions together get more than ``GOVERNANCE_MAX_CHALLENGER_SHARE`` %
of live traffic (50 by default), and more than before, is a promotion in all but name: a
*takeover*. So, whichever door it comes through (``traffic_split_set``, ``challenger_start``):

- every challenger whose share rises must pass the endpoint's promotion gate against the
  champion, or carry a gate override reason (409 otherwise), exactly as for ``endpoint_promote``;
- with ``REQUIRE_PROMOTION_APPROVAL`` on, a person cannot make it alone (403 ``approval_required``):
  one person asks with ``traffic_change_request``, a different approver approves it with
  ``promotion_approve`` (the same four-eyes request and the same buttons as a promotion), which
  applies the split.

The system actor (management commands, automation) skips the approval, as it does for
promotions, but never the gate. Lowering a challenger, or any change that leaves the champion
the majority, is never a takeover.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import transaction

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
)
from routing.models import Endpoint, PromotionRequest, Variant

Role = Variant.Role


def _shares(weights: dict[str, int]) -> dict[str, float]:
    total = sum(weights.values())
    return {n: (w / total if total else 0.0) for n, w in weights.items()}


def takeover_verdict(
    actor: Actor,
    endpoint: Endpoint,
    variants: dict[str, Variant],
    weights: dict[str, int],
    override: str,
    *,
    approved: bool = False,
) -> dict[str, Any]:
    """Audit data for a takeover (``{}`` when the change is not one); raises when it may not happen.

    ``variants`` are the weighted variants by name as they are now (a challenger being started
    included, with its current role and weight), ``weights`` the split after the change. A
    takeover: the challengers together end above the limit and at least one of them gains share
    (so moving an approved majority from one challenger to another is one too). Call it before
    changing any row.
    """
    limit = settings.GOVERNANCE_MAX_CHALLENGER_SHARE
    old = _shares({n: v.weight if v.role in Variant.WEIGHTED_ROLES else 0 for n, v in variants.items()})
    new = _shares(weights)
    champion = next((v for v in variants.values() if v.role == Role.CHAMPION), None)
    if champion is None:
        return {}  # weights_must_serve refuses an endpoint without a champion
    challenger_share = sum(s for n, s in new.items() if n != champion.name)
    rising = sorted(n for n in new if n != champion.name and new[n] > old[n] + 1e-9)
    if challenger_share * 100 <= limit or not rising:
        return {}
    if settings.REQUIRE_PROMOTION_APPROVAL and not approved and not isinstance(actor, str):
        raise GovernanceError(
            "approval_required",
            f"This change gives challengers {challenger_share:.0%} of live traffic, more than "
            f"GOVERNANCE_MAX_CHALLENGER_SHARE ({limit} %): like a promotion, it needs a second "
            "person's approval. Request the traffic change (admin: Request traffic change; API: "
            f"POST /api/v1/endpoints/{endpoint.name}/traffic-requests/) or request a promotion.",
            status=403,
        )
    what = f"give challengers {challenger_share:.0%} of live traffic"
    gates = {n: gate_verdict(endpoint, variants[n], champion, override, what).get("gate") for n in rising}
    gates = {n: g for n, g in gates.items() if g}
    if not gates and not approved:
        return {}  # no gate on this endpoint and no approval involved: nothing worth recording
    return {
        "takeover": {"challenger_share": round(challenger_share, 4), "limit_percent": limit, "gates": gates}
    }


def split_checked(endpoint: Endpoint, weights: Any) -> tuple[dict[str, Variant], dict[str, int]]:
    """The weighted variants by name and the new weights: every one named, no other, not all zero."""
    if not isinstance(weights, dict) or not weights:
        raise GovernanceError("invalid", "weights must be a non-empty mapping of variant name to weight.")
    weighted = {
        v.name: v
        for v in endpoint.variants.select_related("model_version").filter(role__in=Variant.WEIGHTED_ROLES)
    }
    unknown = sorted(set(map(str, weights)) - set(weighted))
    missing = sorted(set(weighted) - set(map(str, weights)))
    if unknown:
        raise GovernanceError(
            "invalid", f"{', '.join(unknown)}: not a champion or challenger of {endpoint.name!r}."
        )
    if missing:
        raise GovernanceError(
            "invalid", f"The split must name every weighted variant; missing {', '.join(missing)}."
        )
    new = {str(n): int_in_range(w, f"weight of {n}", 0) for n, w in weights.items()}
    if sum(new.values()) <= 0:
        raise GovernanceError("weights_zero", "Weights must not all be zero: at least one must be positive.")
    return weighted, new


def split_apply(
    actor: Actor,
    endpoint: Endpoint,
    weighted: dict[str, Variant],
    new: dict[str, int],
    reason: str,
    **extra: Any,
) -> Endpoint:
    """Write checked weights, the ``traffic_split_set`` audit row and the MLflow aliases (caller is atomic)."""
    before = endpoint_snapshot(endpoint)
    for n, w in new.items():
        if weighted[n].weight != w:
            weighted[n].weight = w
            weighted[n].save(update_fields=["weight", "updated_at"])
    endpoint.save(update_fields=["updated_at"])
    endpoint_audit(actor, "traffic_split_set", endpoint, before, reason, **extra)
    mlflow_apply(endpoint, actor, reason, [])  # the highest-weight challenger holds the alias
    return endpoint


@transaction.atomic
def traffic_change_request(
    *, actor: Actor, endpoint_name: str, weights: dict[str, int], reason: str, gate_override_reason: str = ""
) -> PromotionRequest:
    """Ask for a split (typically one that hands challengers most of the traffic); another user approves it."""
    permission_check(actor, "traffic_change_request")
    reason = reason_required(reason)
    if isinstance(actor, str):
        raise GovernanceError(
            "forbidden", "A traffic change request needs a person as its requester.", status=403
        )
    endpoint = endpoint_locked(endpoint_name)
    weighted, new = split_checked(endpoint, weights)
    takeover_verdict(actor, endpoint, weighted, new, gate_override_reason, approved=True)  # the gate, early
    if endpoint.promotion_requests.filter(status=PromotionRequest.Status.PENDING).exists():
        raise GovernanceError(
            "conflict",
            f"Endpoint {endpoint.name!r} already has a pending request; decide it first.",
            status=409,
        )
    challengers = [v for v in weighted.values() if v.role != Role.CHAMPION]
    if not challengers:
        raise GovernanceError("invalid", f"Endpoint {endpoint.name!r} has no challenger to shift traffic to.")
    request = PromotionRequest.objects.create(
        endpoint=endpoint,
        variant=max(challengers, key=lambda v: (new[v.name] - v.weight, v.name)),
        kind=PromotionRequest.Kind.TRAFFIC,
        weights=new,
        reason=reason,
        gate_override_reason=(gate_override_reason or "").strip(),
        requested_by=actor,
    )
    endpoint_audit(
        actor,
        "traffic_change_requested",
        endpoint,
        endpoint_snapshot(endpoint),
        reason,
        request=request.pk,
        weights=new,
    )
    return request


def traffic_change_apply(actor: Actor, endpoint: Endpoint, request: PromotionRequest, why: str) -> Variant:
    """Apply an approved traffic request (from ``promotion_approve``, inside its transaction)."""
    try:
        weighted, new = split_checked(endpoint, request.weights)
    except GovernanceError as exc:
        raise GovernanceError(
            "conflict",
            f"The endpoint's variants changed since request {request.pk} was made ({exc.message}); "
            "reject it and request the change again.",
            status=409,
        ) from exc
    verdict = takeover_verdict(actor, endpoint, weighted, new, request.gate_override_reason, approved=True)
    extra = {"request": request.pk, "requested_by": request.requested_by.get_username(), **verdict}
    split_apply(actor, endpoint, weighted, new, why, **extra)
    return Variant.objects.select_related("endpoint").get(pk=request.variant_id)
