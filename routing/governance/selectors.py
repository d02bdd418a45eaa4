"""Reads of routing state that are more than one line: shares, history, serving variants."""

from __future__ import annotations

from django.db.models import QuerySet

from registry.models import AuditEvent
from routing.models import AliasPush, Endpoint, PromotionRequest, Variant, traffic_shares


def endpoint_variants(*, endpoint: Endpoint, include_inactive: bool = True) -> list[Variant]:
    """The endpoint's variants, serving ones first (champion, challengers, shadows)."""
    order = {role: i for i, role in enumerate(Variant.Role.values)}
    qs = endpoint.variants.select_related("model_version__registered_model")
    if not include_inactive:
        qs = qs.filter(role__in=Variant.SERVING_ROLES)
    return sorted(qs, key=lambda v: (order[v.role], -v.weight, v.name))


def variant_shares(*, variants: list[Variant]) -> dict[str, float]:
    """Share of live traffic per variant name, 0..1 (``traffic_shares``: 0 for shadows and the rest)."""
    return traffic_shares((v.name, v.role, v.weight) for v in variants)


def endpoint_history(*, endpoint: Endpoint, limit: int = 50) -> QuerySet[AuditEvent]:
    """Audit rows about this endpoint, newest first."""
    return AuditEvent.objects.filter(object_type="endpoint", object_id=str(endpoint.pk))[:limit]


def promotion_requests_pending(*, endpoint: Endpoint) -> QuerySet[PromotionRequest]:
    """The endpoint's pending promotion requests (at most one, by constraint), with who asked."""
    return endpoint.promotion_requests.filter(status=PromotionRequest.Status.PENDING).select_related(
        "variant", "requested_by"
    )


def alias_pushes_open(*, endpoint: Endpoint) -> list[AliasPush]:
    """MLflow alias/tag pushes of the endpoint's model not applied yet (pending or failed), oldest first."""
    return list(
        AliasPush.objects.filter(registered_model_id=endpoint.registered_model_id, status__in=AliasPush.OPEN)
        .select_related("endpoint")
        .order_by("id")
    )
