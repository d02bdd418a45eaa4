"""The rules every governance service shares: locking, validation, snapshots and the audit row.

``routing.governance.services`` (endpoints, traffic, shadows) and ``routing.governance.promotion``
(promotion, approval, rollback) are built from these. Each service locks the endpoint row with
``endpoint_locked`` first, so two admins changing one endpoint run one after the other; takes
``endpoint_snapshot`` before changing anything; and writes ``endpoint_audit`` in the same
transaction, so a change without its audit row cannot exist.
"""

from __future__ import annotations

from typing import Any

from registry.audit import audit_record
from registry.models import ModelVersion
from routing.governance.errors import GovernanceError
from routing.governance.permissions import Actor
from routing.models import Endpoint, Variant
from routing.models.remote_hosts import remote_url_refusal

Role = Variant.Role


def reason_required(reason: str, what: str = "reason") -> str:
    """The reason without surrounding blanks; a 400 when there is none (audit rows need a why)."""
    reason = (reason or "").strip()
    if not reason:
        raise GovernanceError("reason_required", f"A {what} is required for this change.")
    return reason


def endpoint_locked(name: str) -> Endpoint:
    """The endpoint row, locked until the transaction ends (the caller must be atomic); 404 if unknown."""
    try:
        return Endpoint.objects.select_for_update().select_related("registered_model").get(name=str(name))
    except Endpoint.DoesNotExist:
        raise GovernanceError("not_found", f"There is no endpoint named {name!r}.", status=404) from None


def int_in_range(value: Any, field: str, low: int, high: int | None = None) -> int:
    """``value`` as an int within ``low``..``high`` (a numeric string is accepted); a 400 naming ``field``."""
    if isinstance(value, bool) or not isinstance(value, int):
        try:
            value = int(str(value).strip())
        except (TypeError, ValueError):
            raise GovernanceError("invalid", f"{field} must be a whole number, not {value!r}.") from None
    if value < low or (high is not None and value > high):
        bounds = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise GovernanceError("invalid", f"{field} must be {bounds}; got {value}.")
    return value


def servable_version(endpoint: Endpoint, version: Any, model_name: str | None) -> ModelVersion:
    """The servable mirrored version ``version`` of the endpoint's registered model."""
    number = int_in_range(version, "version", 1)
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


def remote_backend_checked(backend: str, remote_url: str) -> tuple[str, str]:
    """``(backend, remote_url)`` when a remote URL is allowed to receive live rows; a 400 otherwise.

    Live client rows are posted to that URL, so only hosts in ``REMOTE_BACKEND_ALLOWED_HOSTS``
    may be named (serving checks again before every call).
    """
    remote_url = (remote_url or "").strip()
    if backend not in Variant.Backend.values:
        raise GovernanceError("invalid", f"backend must be one of {', '.join(Variant.Backend.values)}.")
    if backend != Variant.Backend.REMOTE:
        if remote_url:
            raise GovernanceError("invalid", "remote_url is only for backend 'remote'.")
        return backend, ""
    if not remote_url:
        raise GovernanceError("invalid", "A remote backend needs the scoring server's URL (remote_url).")
    refusal = remote_url_refusal(remote_url)
    if refusal:
        raise GovernanceError("remote_not_allowed", f"remote_url refused: {refusal}.")
    return backend, remote_url


def variant_named(endpoint: Endpoint, name: str) -> Variant:
    """The endpoint's variant called ``name`` (any role), or a 400 naming it."""
    variant = endpoint.variants.select_related("model_version").filter(name=str(name)).first()
    if variant is None:
        raise GovernanceError(
            "variant_not_found", f"Endpoint {endpoint.name!r} has no variant named {name!r}."
        )
    return variant


def variant_row_for_version(endpoint: Endpoint, mv: ModelVersion, name: str | None) -> Variant:
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


def weights_scaled(weights: dict[str, int], total: int) -> dict[str, int]:
    """Integer weights proportional to ``weights`` summing to ``total`` (largest remainder)."""
    current = sum(weights.values())
    if current == 0:
        return dict.fromkeys(weights, 0)
    exact = {k: w * total / current for k, w in weights.items()}
    out = {k: int(v) for k, v in exact.items()}
    for k in sorted(exact, key=lambda k: exact[k] - out[k], reverse=True)[: total - sum(out.values())]:
        out[k] += 1
    return out


def endpoint_snapshot(endpoint: Endpoint) -> dict[str, Any]:
    """The endpoint's state as audit JSON: active flag and every non-retired variant's role and weight."""
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


def endpoint_audit(
    actor: Actor, action: str, endpoint: Endpoint, before: dict, reason: str, **extra: Any
) -> None:
    """Append the audit row ``routing.<action>``: ``before`` as given, after as the endpoint is now."""
    after = endpoint_snapshot(endpoint)
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


def gate_verdict(
    endpoint: Endpoint, challenger: Variant, champion: Variant, override: str, what: str = "promote"
) -> dict[str, Any]:
    """The promotion gate's verdict as audit data; raises unless it passes or is overridden with a reason.

    ``what`` completes "give a gate override reason to ... anyway" (promotions, and traffic
    changes that hand challengers most of the traffic, share this gate).
    """
    metric = endpoint.gate_metric
    if not metric:
        return {}
    ours = challenger.model_version.metrics.get(metric)
    theirs = champion.model_version.metrics.get(metric)
    if ours is None or theirs is None:
        passed, why = False, f"{metric} is missing on {'the challenger' if ours is None else 'the champion'}"
    else:
        higher = endpoint.gate_mode == Endpoint.GateMode.HIGHER_IS_BETTER
        passed = ours >= theirs if higher else ours <= theirs
        why = f"{metric}: challenger {ours:.6g} vs champion {theirs:.6g} ({endpoint.get_gate_mode_display().lower()})"
    verdict = {"gate": {"metric": metric, "challenger": ours, "champion": theirs, "passed": passed}}
    if not passed:
        if not (override or "").strip():
            raise GovernanceError(
                "gate_failed",
                f"Promotion gate failed: {why}. Give a gate override reason to {what} anyway.",
                status=409,
            )
        verdict["gate"]["override_reason"] = override.strip()
    return verdict


def weights_must_serve(endpoint: Endpoint) -> None:
    """Refuse a state in which the endpoint has no champion or no positive weight (400)."""
    weighted = endpoint.variants.filter(role__in=Variant.WEIGHTED_ROLES)
    if not weighted.filter(role=Role.CHAMPION).exists():
        raise GovernanceError("no_champion", f"Endpoint {endpoint.name!r} would be left without a champion.")
    if sum(v.weight for v in weighted) <= 0:
        raise GovernanceError("weights_zero", "Weights must not all be zero: at least one must be positive.")
