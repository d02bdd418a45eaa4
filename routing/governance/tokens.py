"""Service tokens: create (the raw token is returned once), revoke, and change what one may call.

Every change is a service here, like every other governance change: permission-checked through
``routing.governance.permissions`` (``routing.create_token``, ``routing.revoke_token``,
``routing.edit_token_scope``; the SRE group has them), the row locked, and an audit row
(``routing.token_created``, ``routing.token_revoked``, ``routing.token_changed``) written in the
same transaction. The admin and ``create_service_token`` (actor ``system``) call these; nothing
saves a token row itself. Audit rows name the token and its prefix, never the raw token.

When a change reaches /predict: every worker copies the active tokens into its routing table on
each refresh (``ROUTING_REFRESH_SECONDS``, 1 s by default), so a new token, a revocation or a
scope change holds on every worker within about two refresh periods.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.db import transaction
from django.utils import timezone

from registry.audit import audit_record
from routing.governance.errors import GovernanceError
from routing.governance.permissions import Actor, permission_check
from routing.governance.rules import int_in_range
from routing.models import Endpoint, ServiceToken, hash_token

SCOPES: tuple[str, ...] = tuple(ServiceToken.Scope.values)
_UNCHANGED: Any = object()


def _scopes_checked(scopes: Iterable[str] | None) -> list[str]:
    wanted = sorted({str(s).strip() for s in (scopes if scopes is not None else ["predict"])})
    unknown = [s for s in wanted if s not in SCOPES]
    if unknown:
        raise GovernanceError("invalid", f"Unknown scope {', '.join(unknown)}: use {', '.join(SCOPES)}.")
    if not wanted:
        raise GovernanceError("invalid", f"A token needs at least one scope ({', '.join(SCOPES)}).")
    return wanted


def _endpoints_checked(endpoints: Iterable[str] | None, all_endpoints: bool) -> list[Endpoint]:
    wanted = sorted({str(e) for e in endpoints or []})
    found = list(Endpoint.objects.filter(name__in=wanted))
    missing = sorted(set(wanted) - {e.name for e in found})
    if missing:
        raise GovernanceError("invalid", f"No endpoint named {', '.join(missing)}.")
    if not wanted and not all_endpoints:
        raise GovernanceError("invalid", "Name at least one endpoint, or allow all endpoints.")
    return found


def _rate_checked(rate_limit_per_second: Any) -> int | None:
    if rate_limit_per_second is None or rate_limit_per_second == "":
        return None
    return int_in_range(rate_limit_per_second, "rate limit per second", 0)


def token_snapshot(token: ServiceToken) -> dict[str, Any]:
    """What a token may do, as audit JSON (never the raw token or its hash)."""
    return {
        "name": token.name,
        "prefix": token.prefix,
        "endpoints": "all" if token.all_endpoints else sorted(e.name for e in token.endpoints.all()),
        "scopes": sorted(token.scopes or []),
        "can_override": token.can_override,
        "rate_limit_per_second": token.rate_limit_per_second,
        "revoked": token.revoked_at is not None,
    }


def _audit(actor: Actor, action: str, token: ServiceToken, before: dict, reason: str) -> None:
    audit_record(
        actor=actor,
        action=f"routing.{action}",
        object_type="service_token",
        object_id=token.pk,
        object_repr=str(token),
        before=before,
        after=token_snapshot(token),
        reason=(reason or "").strip(),
    )


def _token_locked(name: str) -> ServiceToken:
    token = ServiceToken.objects.select_for_update().filter(name=str(name)).first()
    if token is None:
        raise GovernanceError("not_found", f"There is no service token named {name!r}.", status=404)
    return token


@transaction.atomic
def service_token_create(
    *,
    actor: Actor,
    name: str,
    endpoints: list[str] | None = None,
    all_endpoints: bool = False,
    can_override: bool = False,
    rate_limit_per_second: int | None = None,
    scopes: list[str] | None = None,
    reason: str = "",
) -> tuple[ServiceToken, str]:
    """Create a token for ``endpoints`` (or all) and ``scopes`` (default predict); the raw token is returned once."""
    permission_check(actor, "service_token_create")
    name = (name or "").strip()
    if not name or len(name) > 100:
        raise GovernanceError("invalid", "A token needs a name of 1 to 100 characters.")
    if ServiceToken.objects.filter(name=name).exists():
        raise GovernanceError("conflict", f"A service token named {name!r} already exists.", status=409)
    found = _endpoints_checked(endpoints, all_endpoints)
    raw = ServiceToken.generate()
    token = ServiceToken.objects.create(
        name=name,
        token_hash=hash_token(raw),
        prefix=raw[:10],
        all_endpoints=all_endpoints,
        can_override=can_override,
        rate_limit_per_second=_rate_checked(rate_limit_per_second),
        scopes=_scopes_checked(scopes),
    )
    token.endpoints.set(found)
    _audit(actor, "token_created", token, {}, reason)
    return token, raw


@transaction.atomic
def service_token_revoke(*, actor: Actor, name: str, reason: str = "") -> ServiceToken:
    """Revoke a token; /predict refuses it within about two routing-table refreshes. Idempotent."""
    permission_check(actor, "service_token_revoke")
    token = _token_locked(name)
    if token.revoked_at is None:
        before = token_snapshot(token)
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])
        _audit(actor, "token_revoked", token, before, reason)
    return token


@transaction.atomic
def service_token_update(
    *,
    actor: Actor,
    name: str,
    endpoints: list[str] | None = _UNCHANGED,
    all_endpoints: bool = _UNCHANGED,
    can_override: bool = _UNCHANGED,
    rate_limit_per_second: int | None = _UNCHANGED,
    scopes: list[str] = _UNCHANGED,
    reason: str = "",
) -> ServiceToken:
    """Change what a live token may call (endpoints, scopes, X-Variant override, rate limit).

    Arguments left out keep their value. A revoked token cannot be changed (409).
    """
    permission_check(actor, "service_token_update")
    token = _token_locked(name)
    if token.revoked_at is not None:
        raise GovernanceError("conflict", f"Service token {name!r} is revoked; create a new one.", status=409)
    before = token_snapshot(token)
    if all_endpoints is not _UNCHANGED:
        token.all_endpoints = bool(all_endpoints)
    if endpoints is not _UNCHANGED:
        token.endpoints.set(_endpoints_checked(endpoints, token.all_endpoints))
    elif not token.all_endpoints and not token.endpoints.exists():
        raise GovernanceError("invalid", "Name at least one endpoint, or allow all endpoints.")
    if can_override is not _UNCHANGED:
        token.can_override = bool(can_override)
    if rate_limit_per_second is not _UNCHANGED:
        token.rate_limit_per_second = _rate_checked(rate_limit_per_second)
    if scopes is not _UNCHANGED:
        token.scopes = _scopes_checked(scopes)
    token.save(update_fields=["all_endpoints", "can_override", "rate_limit_per_second", "scopes"])
    if token_snapshot(token) != before:
        _audit(actor, "token_changed", token, before, reason)
    return token
