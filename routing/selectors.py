"""Reads of routing state that are more than one line: shares, history, serving variants."""

from __future__ import annotations

from django.db.models import QuerySet

from registry.models import AuditEvent
from routing.models import Endpoint, PromotionRequest, Variant


def endpoint_variants(*, endpoint: Endpoint, include_inactive: bool = True) -> list[Variant]:
    """The endpoint's variants, serving ones first (champion, challengers, shadows)."""
    order = {role: i for i, role in enumerate(Variant.Role.values)}
    qs = endpoint.variants.select_related("model_version__registered_model")
    if not include_inactive:
        qs = qs.filter(role__in=Variant.SERVING_ROLES)
    return sorted(qs, key=lambda v: (order[v.role], -v.weight, v.name))


def variant_shares(*, variants: list[Variant]) -> dict[str, float]:
    """Share of live traffic per variant name, 0..1 (champion and challengers only)."""
    weighted = [v for v in variants if v.role in Variant.WEIGHTED_ROLES]
    total = sum(v.weight for v in weighted)
    return {v.name: (v.weight / total if total else 0.0) for v in weighted}


def endpoint_history(*, endpoint: Endpoint, limit: int = 50) -> QuerySet[AuditEvent]:
    """Audit rows about this endpoint, newest first."""
    return AuditEvent.objects.filter(object_type="endpoint", object_id=str(endpoint.pk))[:limit]


def promotion_requests_pending(*, endpoint: Endpoint) -> QuerySet[PromotionRequest]:
    return endpoint.promotion_requests.filter(status=PromotionRequest.Status.PENDING).select_related(
        "variant", "requested_by"
    )
