"""Services for service tokens: create (the raw token is returned once) and revoke."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import transaction

from routing.models_serving import ServiceToken, hash_token


@transaction.atomic
def service_token_create(
    *,
    name: str,
    endpoints: list[str] | None = None,
    all_endpoints: bool = False,
    can_override: bool = False,
    rate_limit_per_second: int | None = None,
) -> tuple[ServiceToken, str]:
    """Create a token scoped to ``endpoints`` (or all); returns the row and the raw token, shown once."""
    from routing.models import Endpoint

    if ServiceToken.objects.filter(name=name).exists():
        raise ValidationError(f"a service token named {name!r} already exists")
    wanted = sorted(set(endpoints or []))
    found = list(Endpoint.objects.filter(name__in=wanted))
    missing = sorted(set(wanted) - {e.name for e in found})
    if missing:
        raise ValidationError(f"no endpoint named {', '.join(missing)}")
    if not wanted and not all_endpoints:
        raise ValidationError("name at least one endpoint, or allow all endpoints")
    raw = ServiceToken.generate()
    token = ServiceToken.objects.create(
        name=name,
        token_hash=hash_token(raw),
        prefix=raw[:10],
        all_endpoints=all_endpoints,
        can_override=can_override,
        rate_limit_per_second=rate_limit_per_second,
    )
    token.endpoints.set(found)
    return token, raw


@transaction.atomic
def service_token_revoke(*, name: str) -> ServiceToken:
    """Revoke a token; /predict refuses it within about two routing-table refreshes."""
    token = ServiceToken.objects.select_for_update().get(name=name)
    if token.revoked_at is None:
        token.revoke()
    return token
