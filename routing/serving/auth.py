"""Bearer-token check and per-token rate limit for /predict, without touching the database.

Tokens are looked up by their SHA-256 in the routing table's in-memory copy (refreshed every
second, so a revocation takes effect within about two seconds). The rate limit is a fixed
one-second window kept by ``routing.serving.ratelimit``: per worker with ``memory://``, shared
across workers and replicas with Redis (what production should use), failing open when Redis fails.
"""

from __future__ import annotations

from django.conf import settings

from routing.models import hash_token
from routing.serving.errors import AccessDenied
from routing.serving.ratelimit import LIMITER
from routing.serving.table import Snapshot, TokenInfo


def authenticate(authorization: str, snapshot: Snapshot) -> TokenInfo:
    """The token named by an ``Authorization: Bearer ...`` header, or a 401."""
    scheme, _, raw = authorization.partition(" ")
    if scheme.lower() != "bearer" or not raw.strip():
        raise AccessDenied(
            401, "unauthorized", "missing bearer token: send 'Authorization: Bearer <service token>'"
        )
    token = snapshot.tokens.get(hash_token(raw.strip()))
    if token is None:
        raise AccessDenied(401, "unauthorized", "invalid or revoked service token")
    return token


def authorize(token: TokenInfo, endpoint: str, scope: str = "predict") -> None:
    """A 403 unless the token may call ``endpoint`` for ``scope`` (predict, feedback, batch)."""
    if scope not in token.scopes:
        raise AccessDenied(
            403,
            "forbidden",
            f"token {token.name!r} lacks the scope {scope!r} (it has: {', '.join(sorted(token.scopes))})",
        )
    if not token.allows(endpoint):
        raise AccessDenied(403, "forbidden", f"token {token.name!r} is not allowed on endpoint {endpoint!r}")


def throttle(token: TokenInfo, endpoint: str) -> None:
    """A 429 when this token has used up its requests for the current second."""
    limit = token.rate_limit_per_second
    if limit is None:
        limit = settings.PREDICT_RATE_LIMIT_PER_SECOND
    if limit <= 0:
        return
    if not LIMITER.allow(token.id, limit, endpoint):
        raise AccessDenied(
            429,
            "rate_limited",
            f"token {token.name!r} is limited to {limit} requests per second",
            {"limit_per_second": limit, "retry_after_seconds": 1},
        )
