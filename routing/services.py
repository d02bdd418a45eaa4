"""State changes of endpoints and their traffic: create, pause and resume, challengers, the split,
shadows, and re-pushing MLflow aliases; promotion, approval and rollback are in ``routing.promotion``.

Each service (here and in ``routing.promotion``, which uses the helpers below) locks the endpoint
row (``select_for_update``) so two admins changing the same endpoint run one after the other,
writes its rows and its audit row in one transaction, and, when the change alters who is champion
or challenger, moves the MLflow aliases and sets version tags *inside* that transaction. If MLflow
cannot be reached, the transaction rolls back: nothing changes and the caller gets a
``GovernanceError`` (503) naming the server. Aliases already moved by a failed attempt are put back
where they were (best effort; a later ``endpoint_aliases_reconcile`` pushes the database's truth
again).
"""

from __future__ import annotations

from typing import Any

from django.db import transaction

from registry import mlflow_client
from registry.audit import audit_record
from registry.models import ModelVersion, RegisteredModel
from routing.errors import GovernanceError
from routing.mlflow_sync import ALIASES, alias_put, desired_aliases, mirror_update, mlflow_apply
from routing.models import Endpoint, Variant
from routing.permissions import Actor, permission_check

__all__ = ["GovernanceError"]  # re-exported: front doors catch routing.services.GovernanceError

Role = Variant.Role


# --- helpers ------------------------------------------------------------------------------------


def _reason_required(reason: str, what: str = "reason") -> str:
    reason = (reason or "").strip()
    if not reason:
        raise GovernanceError("reason_required", f"A {what} is required for this change.")
    return reason


def _endpoint_locked(name: str) -> Endpoint:
    try:
        return Endpoint.objects.select_for_update().select_related("registered_model").get(name=str(name))
    except Endpoint.DoesNotExist:
        raise GovernanceError("not_found", f"There is no endpoint named {name!r}.", status=404) from None


def _int_in_range(value: Any, field: str, low: int, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        try:
            value = int(str(value).strip())
        except (TypeError, ValueError):
            raise GovernanceError("invalid", f"{field} must be a whole number, not {value!r}.") from None
    if value < low or (high is not None and value > high):
        bounds = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise GovernanceError("invalid", f"{field} must be {bounds}; got {value}.")
    return value


def _version_for(endpoint: Endpoint, version: Any, model_name: str | None) -> ModelVersion:
    """The servable mirrored version ``version`` of the endpoint's registered model."""
    number = _int_in_range(version, "version", 1)
    model = endpoint.registered_model
    if model_name is not None and model_name != model.name:
        raise GovernanceError(
            "wrong_model",
            f"{model_name} v{number} is a version of another model; endpoint {endpoint.name!r} "
            f"serves {model.name!r}.",
        )
    mv = ModelVersion.objects.filter(registered_model=model, version=number).first()
    if mv is None:
        raise GovernanceError(
            "version_not_found",
            f"{model.name} has no version {number} in the mirror; run sync_registry if it is new.",
        )
    if not mv.is_servable:
        state = "deleted in MLflow" if mv.deleted_in_mlflow else mv.status
        raise GovernanceError("version_not_ready", f"{mv} is {state}; only READY versions can serve traffic.")
    return mv


def _variant_named(endpoint: Endpoint, name: str) -> Variant:
    variant = endpoint.variants.select_related("model_version").filter(name=str(name)).first()
    if variant is None:
        raise GovernanceError(
            "variant_not_found", f"Endpoint {endpoint.name!r} has no variant named {name!r}."
        )
    return variant


def _variant_for_version(endpoint: Endpoint, mv: ModelVersion, name: str | None) -> Variant:
    """A new variant row, or the retired row this version already had (one row per version)."""
    existing = endpoint.variants.filter(model_version=mv).first()
    if existing is not None:
        if existing.is_serving:
            raise GovernanceError(
                "conflict",
                f"{mv} already serves on {endpoint.name!r} as {existing.role} {existing.name!r}.",
                status=409,
            )
        return existing
    name = (name or f"v{mv.version}").strip()
    if endpoint.variants.filter(name=name).exists():
        raise GovernanceError(
            "conflict", f"Endpoint {endpoint.name!r} already has a variant {name!r}.", status=409
        )
    return Variant(endpoint=endpoint, name=name, model_version=mv)


def _scaled(weights: dict[str, int], total: int) -> dict[str, int]:
    """Integer weights proportional to ``weights`` summing to ``total`` (largest remainder)."""
    current = sum(weights.values())
    if current == 0:
        return dict.fromkeys(weights, 0)
    exact = {k: w * total / current for k, w in weights.items()}
    out = {k: int(v) for k, v in exact.items()}
    for k in sorted(exact, key=lambda k: exact[k] - out[k], reverse=True)[: total - sum(out.values())]:
        out[k] += 1
    return out


def _snapshot(endpoint: Endpoint) -> dict[str, Any]:
    variants = endpoint.variants.select_related("model_version").order_by("name")
    return {
        "is_active": endpoint.is_active,
        "variants": {
            v.name: {
                "role": v.role,
                "version": v.model_version.version,
                "weight": v.weight,
                "mirror_percent": v.mirror_percent,
            }
            for v in variants
            if v.role != Role.RETIRED
        },
    }


def _audit(actor: Actor, action: str, endpoint: Endpoint, before: dict, reason: str, **extra: Any) -> None:
    after = _snapshot(endpoint)
    after.update(extra)
    audit_record(
        actor=actor,
        action=f"routing.{action}",
        object_type="endpoint",
        object_id=endpoint.pk,
        object_repr=endpoint.name,
        before=before,
        after=after,
        reason=reason,
    )


def _weights_must_serve(endpoint: Endpoint) -> None:
    weighted = endpoint.variants.filter(role__in=Variant.WEIGHTED_ROLES)
    if not weighted.filter(role=Role.CHAMPION).exists():
        raise GovernanceError("no_champion", f"Endpoint {endpoint.name!r} would be left without a champion.")
    if sum(v.weight for v in weighted) <= 0:
        raise GovernanceError("weights_zero", "Weights must not all be zero: at least one must be positive.")


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
    reason = _reason_required(reason)
    from django.utils.text import slugify

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
    mv = _version_for(endpoint, champion_version, None)
    endpoint.save()
    champion = Variant.objects.create(
        endpoint=endpoint, name=f"v{mv.version}", role=Role.CHAMPION, model_version=mv, weight=100
    )
    _audit(actor, "endpoint_created", endpoint, {}, reason)
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
    reason = _reason_required(reason)
    endpoint = _endpoint_locked(endpoint_name)
    if endpoint.is_active == active:
        state = "active" if active else "paused"
        raise GovernanceError("conflict", f"Endpoint {endpoint.name!r} is already {state}.", status=409)
    before = _snapshot(endpoint)
    endpoint.is_active = active
    endpoint.save(update_fields=["is_active", "updated_at"])
    _audit(actor, "endpoint_resumed" if active else "endpoint_paused", endpoint, before, reason)
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
) -> Variant:
    """Add ``version`` as a challenger taking ``percent`` % of live traffic.

    The other weighted variants keep their proportions and are rescaled to share the rest, so
    after this call the weights sum to 100 and read as percentages.
    """
    permission_check(actor, "challenger_start")
    reason = _reason_required(reason)
    percent = _int_in_range(percent, "percent", 1, 99)
    endpoint = _endpoint_locked(endpoint_name)
    mv = _version_for(endpoint, version, model_name)
    variant = _variant_for_version(endpoint, mv, name)
    before = _snapshot(endpoint)
    weighted = {v.name: v for v in endpoint.variants.filter(role__in=Variant.WEIGHTED_ROLES)}
    rest = _scaled({n: v.weight for n, v in weighted.items()}, 100 - percent)
    for n, w in rest.items():
        if weighted[n].weight != w:
            weighted[n].weight = w
            weighted[n].save(update_fields=["weight", "updated_at"])
    variant.role, variant.weight, variant.mirror_percent = Role.CHALLENGER, percent, 0
    variant.backend, variant.remote_url = backend, remote_url
    _variant_save(variant)
    _weights_must_serve(endpoint)
    _audit(actor, "challenger_started", endpoint, before, reason, variant=variant.name)
    mlflow_apply(endpoint, actor, reason, [variant])
    return variant


def _variant_save(variant: Variant) -> None:
    from django.core.exceptions import ValidationError

    try:
        variant.full_clean(exclude=["endpoint", "model_version"], validate_constraints=False)
    except ValidationError as exc:
        raise GovernanceError(
            "invalid", "; ".join(m for ms in exc.message_dict.values() for m in ms)
        ) from exc
    variant.save()


@transaction.atomic
def traffic_split_set(*, actor: Actor, endpoint_name: str, weights: dict[str, int], reason: str) -> Endpoint:
    """Set the weights of the champion and every challenger at once (names -> weight).

    Every weighted variant must be named, no other; weights are non-negative and not all zero.
    """
    permission_check(actor, "traffic_split_set")
    reason = _reason_required(reason)
    endpoint = _endpoint_locked(endpoint_name)
    if not isinstance(weights, dict) or not weights:
        raise GovernanceError("invalid", "weights must be a non-empty mapping of variant name to weight.")
    weighted = {v.name: v for v in endpoint.variants.filter(role__in=Variant.WEIGHTED_ROLES)}
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
    new = {str(n): _int_in_range(w, f"weight of {n}", 0) for n, w in weights.items()}
    if sum(new.values()) <= 0:
        raise GovernanceError("weights_zero", "Weights must not all be zero: at least one must be positive.")
    before = _snapshot(endpoint)
    for n, w in new.items():
        if weighted[n].weight != w:
            weighted[n].weight = w
            weighted[n].save(update_fields=["weight", "updated_at"])
    endpoint.save(update_fields=["updated_at"])
    _audit(actor, "traffic_split_set", endpoint, before, reason)
    mlflow_apply(endpoint, actor, reason, [])  # the highest-weight challenger holds the alias
    return endpoint


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
    reason = _reason_required(reason)
    percent = _int_in_range(mirror_percent, "mirror_percent", 1, 100)
    endpoint = _endpoint_locked(endpoint_name)
    mv = _version_for(endpoint, version, model_name)
    current = endpoint.variants.filter(model_version=mv, role=Role.SHADOW).first()
    variant = current or _variant_for_version(endpoint, mv, name)
    before = _snapshot(endpoint)
    variant.role, variant.weight, variant.mirror_percent = Role.SHADOW, 0, percent
    _variant_save(variant)
    _audit(actor, "shadow_set", endpoint, before, reason, variant=variant.name)
    return variant


@transaction.atomic
def shadow_remove(*, actor: Actor, endpoint_name: str, variant_name: str, reason: str) -> Variant:
    """Stop mirroring to a shadow; the row stays, retired, for the history."""
    permission_check(actor, "shadow_remove")
    reason = _reason_required(reason)
    endpoint = _endpoint_locked(endpoint_name)
    variant = _variant_named(endpoint, variant_name)
    if variant.role != Role.SHADOW:
        raise GovernanceError("invalid", f"{variant.name!r} is a {variant.role}, not a shadow.")
    before = _snapshot(endpoint)
    variant.role, variant.mirror_percent = Role.RETIRED, 0
    variant.save(update_fields=["role", "mirror_percent", "updated_at"])
    _audit(actor, "shadow_removed", endpoint, before, reason, variant=variant.name)
    return variant


# --- MLflow aliases ----------------------------------------------------------------------------


@transaction.atomic
def endpoint_aliases_reconcile(*, endpoint_name: str, actor: Actor = "system") -> dict[str, int | None]:
    """Push the database's champion/challenger to MLflow (after an outage cut a change short)."""
    endpoint = _endpoint_locked(endpoint_name)
    wanted = desired_aliases(endpoint)
    model = RegisteredModel.objects.select_for_update().get(pk=endpoint.registered_model_id)
    try:
        for alias in ALIASES:
            alias_put(model.name, alias, wanted[alias])
    except mlflow_client.MlflowUnavailable as exc:
        raise GovernanceError("mlflow_unavailable", str(exc), status=503) from exc
    mirror_update(model, wanted, {})
    return wanted
