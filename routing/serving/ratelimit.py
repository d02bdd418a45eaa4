"""The per-token rate limit of /predict: a shared fixed window in one round trip, failing open.

The ``limits`` library keeps the counter: with ``PREDICT_RATE_LIMIT_STORAGE_URL=redis://...`` one
Lua script increments the window's key and sets its expiry in a single call, so every worker and
replica counts against the same limit; with ``memory://`` each worker counts alone.

The limiter protects the models; it must never take /predict down. When the store fails (Redis
down, slow past ``PREDICT_RATE_LIMIT_TIMEOUT_SECONDS``, misconfigured), the request goes through
unchecked and ``controlplane_rate_limit_failed_open_total`` counts it; the store is then left
alone for ``PREDICT_RATE_LIMIT_RETRY_SECONDS`` (those requests are counted too), so an outage
costs one timeout per worker per pause instead of one per request.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass

from django.conf import settings
from limits import RateLimitItemPerSecond
from limits.storage import Storage, storage_from_string
from limits.strategies import FixedWindowRateLimiter
from redis.backoff import NoBackoff
from redis.retry import Retry

from monitoring import metrics

logger = logging.getLogger(__name__)


@dataclass
class _State:
    """One process's limiter: built lazily (after gunicorn forks), rebuilt when settings change."""

    pid: int
    config: tuple[str, str, float]
    limiter: FixedWindowRateLimiter
    skip_until: float = 0.0


class RateLimiter:
    """``allow(token_id, limit)``: whether one more request fits in this second's window."""

    def __init__(self) -> None:
        self._state: _State | None = None
        self._lock = threading.Lock()

    def _config(self) -> tuple[str, str, float]:
        return (
            settings.PREDICT_RATE_LIMIT_STORAGE_URL,
            settings.PREDICT_RATE_LIMIT_KEY_PREFIX,
            settings.PREDICT_RATE_LIMIT_TIMEOUT_SECONDS,
        )

    def _current(self) -> _State:
        config, state = self._config(), self._state
        if state is not None and state.pid == os.getpid() and state.config == config:
            return state
        with self._lock:
            state = self._state
            if state is None or state.pid != os.getpid() or state.config != config:
                state = _State(os.getpid(), config, FixedWindowRateLimiter(_storage(*config)))
                self._state = state
            return state

    def allow(self, token_id: int, limit: int, endpoint: str) -> bool:
        """True when the request may go on: under the limit, or the store failed (fail open)."""
        state = self._current()
        if time.monotonic() < state.skip_until:
            metrics.record_rate_limit_failed_open(endpoint)
            return True
        try:
            return state.limiter.hit(RateLimitItemPerSecond(limit), "predict", str(token_id))
        except Exception as exc:  # any store failure: connection refused, timeout, script error
            state.skip_until = time.monotonic() + settings.PREDICT_RATE_LIMIT_RETRY_SECONDS
            metrics.record_rate_limit_failed_open(endpoint)
            logger.warning("rate-limit store failed (%s: %s); failing open", type(exc).__name__, exc)
            return True

    def reset(self) -> None:
        """Forget counters and the retry pause (tests: token ids are reused after a rollback)."""
        state = self._current()
        state.skip_until = 0.0
        try:
            state.limiter.storage.reset()
        except Exception:  # a down store has nothing to reset
            logger.debug("rate-limit store reset failed", exc_info=True)


def _storage(url: str, prefix: str, timeout: float) -> Storage:
    if url.startswith("memory://"):
        return storage_from_string(url)
    # Short socket timeouts and no retries (redis-py retries three times with backoff by
    # default): a hung or dead Redis must cost one request milliseconds, not seconds.
    return storage_from_string(
        url,
        key_prefix=prefix,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=Retry(NoBackoff(), 0),
    )


LIMITER = RateLimiter()
