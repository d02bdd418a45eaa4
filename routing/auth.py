"""Bearer-token check and per-token rate limit for /predict, without touching the database.

Tokens are looked up by their SHA-256 in the routing table's in-memory copy (refreshed every
second, so a revocation takes effect within about two seconds). The rate limit is a fixed
one-second window counted in Django's cache: per worker with the default locmem cache, shared
across workers and replicas when ``CACHE_URL`` points at Redis (what production should use).
"""

from __future__ import annotations

import time

from django.conf import settings
from django.core.cache import cache

from routing.models_serving import hash_token
from routing.payloads import PayloadError
from routing.table import Snapshot, TokenInfo


def authenticate(authorization: str, snapshot: Snapshot) -> TokenInfo:
    """The token named by an ``Authorization: Bearer ...`` header, or a 401."""
    scheme, _, raw = authorization.partition(" ")
    if scheme.lower() != "bearer" or not raw.strip():
        raise PayloadError(
            401, "unauthorized", "missing bearer token: send 'Authorization: Bearer <service token>'"
        )
    token = snapshot.tokens.get(hash_token(raw.strip()))
    if token is None:
        raise PayloadError(401, "unauthorized", "invalid or revoked service token")
    return token


def authorize(token: TokenInfo, endpoint: str) -> None:
    if not token.allows(endpoint):
        raise PayloadError(403, "forbidden", f"token {token.name!r} is not allowed on endpoint {endpoint!r}")


def throttle(token: TokenInfo) -> None:
    """A 429 when this token has used up its requests for the current second."""
    limit = token.rate_limit_per_second
    if limit is None:
        limit = settings.PREDICT_RATE_LIMIT_PER_SECOND
    if limit <= 0:
        return
    window = int(time.time())
    key = f"predict-rl:{token.id}:{window}"
    if cache.add(key, 1, timeout=2):
        count = 1
    else:
        try:
            count = cache.incr(key)
        except ValueError:  # expired between add and incr
            cache.add(key, 1, timeout=2)
            count = 1
    if count > limit:
        raise PayloadError(
            429,
            "rate_limited",
            f"token {token.name!r} is limited to {limit} requests per second",
            {"limit_per_second": limit, "retry_after_seconds": 1},
        )
