"""The per-worker routing table: endpoints, variants, loaded models and tokens, in memory.

A background thread rebuilds it from the database every ``ROUTING_REFRESH_SECONDS`` (loading
new model versions before the swap), so a weight change, promotion or token revocation reaches
every worker within about two refresh periods without a request ever touching the database.

Assignment with a unit key is weighted rendezvous hashing: each serving variant scores
``-ln(u) / weight`` with ``u`` a stable hash of (endpoint, unit key, variant name) and the
lowest score wins. It depends on nothing but those strings and the weights, so it agrees across
workers, replicas and restarts; raising one variant's weight lowers only that variant's scores,
so units only ever move towards it.
"""

from __future__ import annotations

import bisect
import hashlib
import logging
import math
import os
import random
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import close_old_connections

from routing.inference import LoadedModel
from routing.loader import STORE
from routing.remote import RemoteBackend, backend_for
from routing.validation import Schema

logger = logging.getLogger(__name__)

_TWO_64 = float(2**64)


@dataclass(frozen=True)
class VariantRoute:
    """One serving variant as the hot path sees it, with its model (or why it has none)."""

    name: str
    role: str
    weight: int
    mirror_percent: int
    model_name: str
    model_version: int
    schema: Schema | None
    backend: str = "inprocess"
    model: LoadedModel | None = None
    remote: RemoteBackend | None = None
    load_error: str = ""

    @property
    def can_serve(self) -> bool:
        return self.remote is not None or self.model is not None


@dataclass(frozen=True)
class EndpointRoute:
    name: str
    is_active: bool
    champion: VariantRoute | None
    weighted: tuple[VariantRoute, ...]  # champion and challengers with weight > 0
    shadows: tuple[VariantRoute, ...]
    by_name: dict[str, VariantRoute]
    cumulative: tuple[int, ...] = ()

    def share(self, variant: str) -> float:
        total = sum(v.weight for v in self.weighted)
        return next((v.weight / total for v in self.weighted if v.name == variant), 0.0) if total else 0.0


@dataclass(frozen=True)
class TokenInfo:
    id: int
    name: str
    endpoints: frozenset[str] | None  # None: every endpoint
    can_override: bool
    rate_limit_per_second: int | None

    def allows(self, endpoint: str) -> bool:
        return self.endpoints is None or endpoint in self.endpoints


@dataclass(frozen=True)
class Snapshot:
    endpoints: dict[str, EndpointRoute] = field(default_factory=dict)
    tokens: dict[str, TokenInfo] = field(default_factory=dict)
    built_at: float = 0.0


def _unit_hash(endpoint: str, unit_key: str, variant: str) -> float:
    digest = hashlib.blake2b(f"{endpoint}\x00{unit_key}\x00{variant}".encode(), digest_size=8).digest()
    return (int.from_bytes(digest, "big") + 0.5) / _TWO_64  # in (0, 1), never 0


def pick_sticky(route: EndpointRoute, unit_key: str) -> VariantRoute | None:
    """The variant this unit gets: lowest -ln(u)/weight over the weighted variants."""
    best: VariantRoute | None = None
    best_score = math.inf
    for variant in route.weighted:
        score = -math.log(_unit_hash(route.name, unit_key, variant.name)) / variant.weight
        if score < best_score:
            best, best_score = variant, score
    return best


def pick_random(route: EndpointRoute, rng: random.Random | None = None) -> VariantRoute | None:
    """A variant drawn by weight (no unit key)."""
    if not route.weighted:
        return None
    draw = (rng or random).random() * route.cumulative[-1]
    return route.weighted[bisect.bisect_right(route.cumulative, draw)]


def make_route(name: str, is_active: bool, variants: list[VariantRoute]) -> EndpointRoute:
    """An endpoint's route from its serving variants (champion, challengers, shadows)."""
    weighted = tuple(v for v in variants if v.role in ("champion", "challenger") and v.weight > 0)
    cumulative: list[int] = []
    total = 0
    for v in weighted:
        total += v.weight
        cumulative.append(total)
    return EndpointRoute(
        name=name,
        is_active=is_active,
        champion=next((v for v in variants if v.role == "champion"), None),
        weighted=weighted,
        shadows=tuple(v for v in variants if v.role == "shadow" and v.mirror_percent > 0),
        by_name={v.name: v for v in variants},
        cumulative=tuple(cumulative),
    )


def _remote_options() -> dict[str, Any]:
    return {
        "timeout": settings.PREDICT_REMOTE_TIMEOUT_SECONDS,
        "retries": settings.PREDICT_REMOTE_RETRIES,
        "failure_threshold": settings.PREDICT_REMOTE_BREAKER_FAILURES,
        "cooldown": settings.PREDICT_REMOTE_BREAKER_COOLDOWN_SECONDS,
    }


def _read_database() -> tuple[list[tuple[Any, list[Any]]], dict[str, TokenInfo]]:
    from routing.models import Endpoint, ServiceToken, Variant

    endpoints = []
    for endpoint in Endpoint.objects.all():
        variants = list(
            Variant.objects.filter(endpoint=endpoint, role__in=Variant.SERVING_ROLES).select_related(
                "model_version__registered_model"
            )
        )
        endpoints.append((endpoint, variants))
    tokens: dict[str, TokenInfo] = {}
    for token in ServiceToken.objects.filter(revoked_at__isnull=True).prefetch_related("endpoints"):
        scope = None if token.all_endpoints else frozenset(e.name for e in token.endpoints.all())
        tokens[token.token_hash] = TokenInfo(
            token.id, token.name, scope, token.can_override, token.rate_limit_per_second
        )
    return endpoints, tokens


def build_snapshot() -> Snapshot:
    """Read the database, load every in-process model the active endpoints need, build routes."""
    endpoints, tokens = _read_database()
    wanted = [
        (v.model_version.registered_model.name, v.model_version.version, v.model_version.signature_inputs)
        for e, vs in endpoints
        if e.is_active
        for v in vs
        if v.backend == "inprocess"
    ]
    STORE.sync(wanted, drop=False)  # load the new before the old is dropped
    routes: dict[str, EndpointRoute] = {}
    for endpoint, variants in endpoints:
        built = []
        for v in variants:
            mv = v.model_version
            name, version = mv.registered_model.name, mv.version
            remote = backend_for(v.remote_url, **_remote_options()) if v.backend == "remote" else None
            model = STORE.get(name, version) if remote is None else None
            built.append(
                VariantRoute(
                    name=v.name,
                    role=v.role,
                    weight=v.weight,
                    mirror_percent=v.mirror_percent,
                    model_name=name,
                    model_version=version,
                    schema=model.schema if model else Schema.from_signature(mv.signature_inputs),
                    backend=v.backend,
                    model=model,
                    remote=remote,
                    load_error=STORE.failure(name, version) if remote is None and model is None else "",
                )
            )
        routes[endpoint.name] = make_route(endpoint.name, endpoint.is_active, built)
    return Snapshot(routes, tokens, time.monotonic())


class RoutingTable:
    """Holds the current snapshot and the thread that refreshes it."""

    def __init__(self) -> None:
        self._snapshot: Snapshot | None = None
        self._pid = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.last_error = ""

    def refresh(self) -> Snapshot:
        """Rebuild now (the refresher calls this; tests and start-up may too)."""
        with self._lock:
            snapshot = build_snapshot()
            self._snapshot = snapshot  # one reference swap: readers see old or new, whole
            wanted = {
                (v.model_name, v.model_version)
                for r in snapshot.endpoints.values()
                if r.is_active
                for v in r.by_name.values()
                if v.backend == "inprocess"
            }
            STORE.sync([(n, ver, None) for n, ver in wanted], drop=True)
            self._publish_loaded(snapshot)
            return snapshot

    def _publish_loaded(self, snapshot: Snapshot) -> None:
        try:
            from monitoring import metrics
        except ImportError:
            return
        for route in snapshot.endpoints.values():
            for v in route.by_name.values():
                metrics.set_model_loaded(route.name, v.name, v.model_version, v.can_serve)

    def current(self) -> Snapshot:
        """The snapshot to route with; the first call in a process builds it and starts the thread."""
        snapshot = self._snapshot
        if snapshot is not None and self._pid == os.getpid():
            return snapshot
        return self._start()

    def _start(self) -> Snapshot:
        with self._lock:
            if self._pid != os.getpid():  # a forked worker must not trust its parent's thread
                self._pid = os.getpid()
                self._snapshot = None
                if settings.ROUTING_REFRESH_IN_BACKGROUND:
                    threading.Thread(target=self._run, name="routing-table", daemon=True).start()
        if self._snapshot is None:
            return self.refresh()
        return self._snapshot

    def _run(self) -> None:
        while not self._stop.wait(settings.ROUTING_REFRESH_SECONDS):
            try:
                close_old_connections()
                self.refresh()
                self.last_error = ""
            except Exception as exc:  # keep serving the last good table
                self.last_error = f"{type(exc).__name__}: {exc}"
                logger.exception("routing table refresh failed; serving the previous table")


TABLE = RoutingTable()


def readiness() -> list[str]:
    """For /readyz: every active endpoint's champion is loaded (or remote).

    Rebuilds the table rather than starting the refresher thread, so a probe (or a test that
    calls /readyz) never leaves a thread behind; in a gunicorn worker the refresher already runs.
    """
    try:
        snapshot = TABLE.refresh()
    except Exception as exc:
        return [f"routing table cannot be built: {type(exc).__name__}: {exc}"]
    problems = []
    for route in snapshot.endpoints.values():
        if not route.is_active:
            continue
        champion = route.champion
        if champion is None:
            problems.append(f"endpoint {route.name}: no champion")
        elif not champion.can_serve:
            problems.append(
                f"endpoint {route.name}: champion {champion.name} ({champion.model_name} "
                f"v{champion.model_version}) not loaded: {champion.load_error or 'loading'}"
            )
    return problems
