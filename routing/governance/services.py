"""State changes of endpoints and their traffic: create, pause and resume, challengers, the split,
shadows, and re-pushing MLflow aliases; promotion, approval and rollback are in
``routing.governance.promotion``.

Every service here is built from ``routing.governance.rules``: it locks the endpoint row so two
admins changing the same endpoint run one after the other, writes its rows and its audit row in
one transaction, and, when the change alters who is champion or challenger, writes an outbox
row in that transaction for the MLflow aliases and version tags (``routing.governance.aliases``).
A worker pushes it to MLflow after commit (``routing.governance.outbox``), so no change waits on
MLflow or fails because it is down.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q
from django.utils.text import slugify

from registry.models import RegisteredModel
from routing.governance.aliases import alias_push_record, desired_aliases, mlflow_apply
from routing.governance.errors import GovernanceError
from routing.governance.permissions import Actor, permission_check
from routing.governance.rules import (
    endpoint_audit,
    endpoint_locked,
    endpoint_snapshot,
    int_in_range,
    reason_required,
    remote_backend_checked,
    servable_version,
    variant_named,
    variant_row_for_version,
    weights_must_serve,
    weights_scaled,
)
from routing.governance.traffic_changes import split_apply, split_checked, takeover_verdict
from routing.models import Endpoint, PromotionRequest, Variant

Role = Variant.Role


# --- endpoints ---------------------------------------------------------------------------------


@transaction.atomic
def endpoint_create(
    *,
    actor: Actor,
    name: str,
    model_name: str,
    champion_version: int,
    reason: str,
    description: str = "",
    gate_metric: str = "",
    gate_mode: str = Endpoint.GateMode.HIGHER_IS_BETTER,
) -> Endpoint:
    """Create an endpoint serving ``model_name`` with ``champion_version`` taking all traffic."""
    permission_check(actor, "endpoint_create")
    reason = reason_required(reason)
    if not name or slugify(name) != name:
        raise GovernanceError(
            "invalid", f"Endpoint name {name!r} must be a slug (lowercase letters, digits, -)."
        )
    if gate_mode not in Endpoint.GateMode.values:
        raise GovernanceError("invalid", f"gate_mode must be one of {Endpoint.GateMode.values}.")
    if Endpoint.objects.filter(name=name).exists():
        raise GovernanceError("conflict", f"An endpoint named {name!r} already exists.", status=409)
    model = RegisteredModel.objects.filter(name=model_name, deleted_in_mlflow=False).first()
    if model is None:
        raise GovernanceError("model_not_found", f"No registered model {model_name!r} in the mirror.")
    endpoint = Endpoint(
        name=name,
        registered_model=model,
        description=description,
        gate_metric=gate_metric,
        gate_mode=gate_mode,
    )
    mv = servable_version(endpoint, champion_version, None)
    endpoint.save()
    champion = Variant.objects.create(
        endpoint=endpoint, name=f"v{mv.version}", role=Role.CHAMPION, model_version=mv, weight=100
    )
    endpoint_audit(actor, "endpoint_created", endpoint, {}, reason)
    mlflow_apply(endpoint, actor, reason, [champion])
    return endpoint


@transaction.atomic
def endpoint_pause(*, actor: Actor, endpoint_name: str, reason: str) -> Endpoint:
    """Stop serving: /predict answers 503 for this endpoint until it is resumed."""
    return _endpoint_active_set(actor, endpoint_name, reason, active=False)


@transaction.atomic
def endpoint_resume(*, actor: Actor, endpoint_name: str, reason: str) -> Endpoint:
    """Serve again after a pause."""
    return _endpoint_active_set(actor, endpoint_name, reason, active=True)


def _endpoint_active_set(actor: Actor, endpoint_name: str, reason: str, *, active: bool) -> Endpoint:
    permission_check(actor, "endpoint_resume" if active else "endpoint_pause")
    reason = reason_required(reason)
    endpoint = endpoint_locked(endpoint_name)
    if endpoint.is_active == active:
        state = "active" if active else "paused"
        raise GovernanceError("conflict", f"Endpoint {endpoint.name!r} is already {state}.", status=409)
    before = endpoint_snapshot(endpoint)
    endpoint.is_active = active
    endpoint.save(update_fields=["is_active", "updated_at"])
    endpoint_audit(actor, "endpoint_resumed" if active else "endpoint_paused", endpoint, before, reason)
    return endpoint


# --- traffic -----------------------------------------------------------------------------------


@transaction.atomic
def challenger_start(
    *,
    actor: Actor,
    endpoint_name: str,
    version: int,
    percent: int,
    reason: str,
    model_name: str | None = None,
    name: str | None = None,
    backend: str = Variant.Backend.INPROCESS,
    remote_url: str = "",
    gate_override_reason: str = "",
) -> Variant:
    """Add ``version`` as a challenger taking ``percent`` % of live traffic.

    The other weighted variants keep their proportions and are rescaled to share the rest, so
    after this call the weights sum to 100 and read as percentages. A remote backend's URL must
    be on ``REMOTE_BACKEND_ALLOWED_HOSTS``; a share that leaves challengers more than
    ``GOVERNANCE_MAX_CHALLENGER_SHARE`` is a takeover (gate, and four-eyes when on).
    """
    permission_check(actor, "challenger_start")
    reason = reason_required(reason)
    percent = int_in_range(percent, "percent", 1, 99)
    backend, remote_url = remote_backend_checked(backend, remote_url)
    endpoint = endpoint_locked(endpoint_name)
    mv = servable_version(endpoint, version, model_name)
    variant = variant_row_for_version(endpoint, mv, name)
    before = endpoint_snapshot(endpoint)
    weighted = {
        v.name: v
        for v in endpoint.variants.select_related("model_version").filter(role__in=Variant.WEIGHTED_ROLES)
    }
    rest = weights_scaled({n: v.weight for n, v in weighted.items()}, 100 - percent)
    verdict = takeover_verdict(
        actor,
        endpoint,
        {**weighted, variant.name: variant},
        {**rest, variant.name: percent},
        gate_override_reason,
    )
    for n, w in rest.items():
        if weighted[n].weight != w:
            weighted[n].weight = w
            weighted[n].save(update_fields=["weight", "updated_at"])
    variant.role, variant.weight, variant.mirror_percent = Role.CHALLENGER, percent, 0
    variant.backend, variant.remote_url = backend, remote_url
    _variant_save(variant)
    weights_must_serve(endpoint)
    endpoint_audit(actor, "challenger_started", endpoint, before, reason, variant=variant.name, **verdict)
    mlflow_apply(endpoint, actor, reason, [variant])
    return variant


def _variant_save(variant: Variant) -> None:
    try:
        variant.full_clean(exclude=["endpoint", "model_version"], validate_constraints=False)
    except ValidationError as exc:
        raise GovernanceError(
            "invalid", "; ".join(m for ms in exc.message_dict.values() for m in ms)
        ) from exc
    variant.save()


@transaction.atomic
def traffic_split_set(
    *, actor: Actor, endpoint_name: str, weights: dict[str, int], reason: str, gate_override_reason: str = ""
) -> Endpoint:
    """Set the weights of the champion and every challenger at once (names -> weight).

    Every weighted variant must be named, no other; weights are non-negative and not all zero.
    A split that hands challengers more than ``GOVERNANCE_MAX_CHALLENGER_SHARE`` passes the
    promotion gate and, with four-eyes on, needs a request and an approval
    (``routing.governance.traffic_changes``).
    """
    permission_check(actor, "traffic_split_set")
    reason = reason_required(reason)
    endpoint = endpoint_locked(endpoint_name)
    weighted, new = split_checked(endpoint, weights)
    verdict = takeover_verdict(actor, endpoint, weighted, new, gate_override_reason)
    return split_apply(actor, endpoint, weighted, new, reason, **verdict)


@transaction.atomic
def shadow_set(
    *,
    actor: Actor,
    endpoint_name: str,
    version: int,
    mirror_percent: int,
    reason: str,
    model_name: str | None = None,
    name: str | None = None,
) -> Variant:
    """Mirror ``mirror_percent`` % of requests to ``version`` (answers are logged, never returned).

    Calling it again for a version that already shadows changes its percentage.
    """
    permission_check(actor, "shadow_set")
    reason = reason_required(reason)
    percent = int_in_range(mirror_percent, "mirror_percent", 1, 100)
    endpoint = endpoint_locked(endpoint_name)
    mv = servable_version(endpoint, version, model_name)
    current = endpoint.variants.filter(model_version=mv, role=Role.SHADOW).first()
    variant = current or variant_row_for_version(endpoint, mv, name)
    before = endpoint_snapshot(endpoint)
    variant.role, variant.weight, variant.mirror_percent = Role.SHADOW, 0, percent
    _variant_save(variant)
    endpoint_audit(actor, "shadow_set", endpoint, before, reason, variant=variant.name)
    return variant


@transaction.atomic
def shadow_remove(*, actor: Actor, endpoint_name: str, variant_name: str, reason: str) -> Variant:
    """Stop mirroring to a shadow; the row stays, retired, for the history."""
    permission_check(actor, "shadow_remove")
    reason = reason_required(reason)
    endpoint = endpoint_locked(endpoint_name)
    variant = variant_named(endpoint, variant_name)
    if variant.role != Role.SHADOW:
        raise GovernanceError("invalid", f"{variant.name!r} is a {variant.role}, not a shadow.")
    before = endpoint_snapshot(endpoint)
    variant.role, variant.mirror_percent = Role.RETIRED, 0
    variant.save(update_fields=["role", "mirror_percent", "updated_at"])
    endpoint_audit(actor, "shadow_removed", endpoint, before, reason, variant=variant.name)
    return variant


@transaction.atomic
def challenger_retire(*, actor: Actor, endpoint_name: str, variant_name: str, reason: str) -> Variant:
    """Stop a challenger: the champion takes back its weight and the row stays, retired, for the history.

    MLflow's ``challenger`` alias moves to the next challenger by weight, or is removed when none
    is left. A pending promotion of the retired variant, and any pending traffic change (its
    weights name a set of variants that no longer serves), are superseded.
    """
    permission_check(actor, "challenger_retire")
    reason = reason_required(reason)
    endpoint = endpoint_locked(endpoint_name)
    variant = variant_named(endpoint, variant_name)
    if variant.role != Role.CHALLENGER:
        raise GovernanceError(
            "not_a_challenger", f"Only a challenger can be retired; {variant.name!r} is a {variant.role}."
        )
    before = endpoint_snapshot(endpoint)
    champion = endpoint.variants.get(role=Role.CHAMPION)
    champion.weight += variant.weight
    champion.save(update_fields=["weight", "updated_at"])
    variant.role, variant.weight = Role.RETIRED, 0
    variant.save(update_fields=["role", "weight", "updated_at"])
    weights_must_serve(endpoint)
    pending = endpoint.promotion_requests.filter(status=PromotionRequest.Status.PENDING)
    pending.filter(Q(variant=variant) | Q(kind=PromotionRequest.Kind.TRAFFIC)).update(
        status=PromotionRequest.Status.SUPERSEDED
    )
    endpoint_audit(actor, "challenger_retired", endpoint, before, reason, variant=variant.name)
    mlflow_apply(endpoint, actor, reason, [variant])
    return variant


# --- MLflow aliases ----------------------------------------------------------------------------


@transaction.atomic
def endpoint_aliases_reconcile(*, endpoint_name: str) -> dict[str, int | None]:
    """Queue a push of the database's champion/challenger to MLflow (puts back aliases moved
    outside the control plane); a worker applies it after commit like any other push."""
    endpoint = endpoint_locked(endpoint_name)
    wanted = desired_aliases(endpoint)
    alias_push_record(endpoint=endpoint, aliases=wanted, tags={}, action="reconcile")
    return wanted
