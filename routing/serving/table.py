"""The per-worker routing table: endpoints, variants, loaded models and tokens, in memory.

Built before the worker accepts requests (``routing.serving.worker``) and kept current by a
background thread that asks the database one cheap question every ``ROUTING_REFRESH_SECONDS``:
has the routing generation moved? Every write to endpoints, variants or tokens bumps it in its
own transaction (database triggers, ``routing.models.RoutingGeneration``), so an unchanged table
costs one query per period and a change is rebuilt with a fixed number of queries whatever the
number of endpoints, loading new model versions before the swap. A weight change, promotion or
token revocation reaches every worker within about two refresh periods; no request ever touches
the database or loads a model.

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
from django.db.models import Prefetch

from monitoring import metrics
from routing.models import Endpoint, RoutingGeneration, ServiceToken, Variant
from routing.serving.errors import ServingError
from routing.serving.inference import LoadedModel
from routing.serving.loader import STORE, Wanted
from routing.serving.remote import RemoteBackend, backend_for
from routing.serving.validation import Schema

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


@dataclass(frozen=True)
class TokenInfo:
    id: int
    name: str
    endpoints: frozenset[str] | None  # None: every endpoint
    can_override: bool
    rate_limit_per_second: int | None
    scopes: frozenset[str] = frozenset({"predict"})  # what it may call: predict, feedback, batch

    def allows(self, endpoint: str) -> bool:
        return self.endpoints is None or endpoint in self.endpoints


@dataclass(frozen=True)
class Snapshot:
    endpoints: dict[str, EndpointRoute] = field(default_factory=dict)
    tokens: dict[str, TokenInfo] = field(default_factory=dict)
    built_at: float = 0.0
    generation: int = 0


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


Rows = tuple[list[Endpoint], dict[str, TokenInfo]]


def _read_database() -> Rows:
    """Endpoints with their serving variants, and active tokens: three queries, however many endpoints."""
    serving = Variant.objects.filter(role__in=Variant.SERVING_ROLES).select_related(
        "model_version__registered_model"
    )
    endpoints = list(Endpoint.objects.prefetch_related(Prefetch("variants", queryset=serving)))
    # One row per (token, endpoint in its scope): a join instead of a query per token.
    active = ServiceToken.objects.filter(revoked_at__isnull=True).values_list(
        "id",
        "name",
        "token_hash",
        "all_endpoints",
        "can_override",
        "rate_limit_per_second",
        "scopes",
        "endpoints__name",
    )
    by_token: dict[int, tuple[tuple[Any, ...], set[str]]] = {}
    for *fields, endpoint in active:
        _, names = by_token.setdefault(fields[0], (tuple(fields), set()))
        if endpoint is not None:
            names.add(endpoint)
    tokens = {
        token_hash: TokenInfo(
            pk,
            name,
            None if all_endpoints else frozenset(names),
            can_override,
            rate,
            scopes=frozenset(scopes or ()),
        )
        for (pk, name, token_hash, all_endpoints, can_override, rate, scopes), names in by_token.values()
    }
    return endpoints, tokens


def _wanted(endpoints: list[Endpoint]) -> list[Wanted]:
    """The in-process versions the active endpoints serve (paused endpoints load nothing)."""
    return [
        Wanted(
            v.model_version.registered_model.name,
            v.model_version.version,
            v.model_version.signature_inputs,
            v.model_version.source,
        )
        for e in endpoints
        if e.is_active
        for v in e.variants.all()
        if v.backend == "inprocess"
    ]


def wanted_now() -> list[Wanted]:
    """What the active endpoints serve in-process, read from the database now."""
    return _wanted(_read_database()[0])


def _variant_route(v: Variant) -> VariantRoute:
    mv = v.model_version
    name, version = mv.registered_model.name, mv.version
    remote = backend_for(v.remote_url, **_remote_options()) if v.backend == "remote" else None
    model = STORE.get(name, version) if remote is None else None
    return VariantRoute(
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


def _load(wanted: list[Wanted], until: float | None) -> None:
    """Load what is missing; with ``until`` (monotonic), stop waiting then and build with what is loaded.

    The loads left running finish in the background; the next refresh sees the store changed and
    puts them in the table.
    """
    if until is None:
        STORE.sync(wanted, drop=False)
        return
    loader = threading.Thread(target=STORE.sync, args=(wanted,), kwargs={"drop": False}, daemon=True)
    loader.start()
    loader.join(max(0.0, until - time.monotonic()))


def build_snapshot(
    rows: Rows | None = None, generation: int = 0, load_until: float | None = None
) -> Snapshot:
    """Load every in-process model the active endpoints need (new before old is dropped), build routes."""
    endpoints, tokens = rows if rows is not None else _read_database()
    _load(_wanted(endpoints), load_until)
    routes = {
        e.name: make_route(e.name, e.is_active, [_variant_route(v) for v in e.variants.all()])
        for e in endpoints
    }
    return Snapshot(routes, tokens, time.monotonic(), generation)


class RoutingTable:
    """This worker's current snapshot, and the one step the refresher repeats (``refresh``).

    Readers (``current``, ``/readyz``) never take the lock: they read one reference, swapped whole.
    """

    def __init__(self) -> None:
        self._snapshot: Snapshot | None = None
        self._rows: Rows | None = None
        self._pid = 0
        self._store_changes = -1
        self._confirmed_at = 0.0  # monotonic time the database last confirmed the table
        self.last_error = ""  # why the last refresh failed ("" when it did not)
        self._lock = threading.Lock()

    @property
    def snapshot(self) -> Snapshot | None:
        """The table this process built, or None (never built, or inherited across a fork)."""
        return self._snapshot if self._pid == os.getpid() else None

    def confirmed_age(self) -> float | None:
        """Seconds since the database last confirmed the table (None: never)."""
        return time.monotonic() - self._confirmed_at if self.snapshot is not None else None

    def refresh(self, force: bool = False, load_until: float | None = None) -> Snapshot:
        """One refresher step: ask the generation; rebuild only when it moved (or a failed load is due).

        ``load_until`` (monotonic time): a worker starting stops waiting for loads then.
        """
        with self._lock:
            try:
                if self._pid != os.getpid():  # a forked child must not trust its parent's table
                    self._pid, self._snapshot, self._rows = os.getpid(), None, None
                generation = RoutingGeneration.current()
                changed = force or self._snapshot is None or generation != self._snapshot.generation
                if changed:
                    self._rows = _read_database()
            except Exception as exc:
                self.last_error = f"{type(exc).__name__}: {exc}"[:500]
                metrics.record_routing_refresh("failed")
                raise
            self._confirmed_at, self.last_error = time.monotonic(), ""
            if changed or STORE.retry_due() or STORE.changes != self._store_changes:
                self._swap(build_snapshot(self._rows, generation, load_until))
                metrics.record_routing_refresh("rebuilt", time.time())
            else:
                metrics.record_routing_refresh("unchanged", time.time())
            return self._snapshot

    def _swap(self, snapshot: Snapshot) -> None:
        self._snapshot = snapshot  # one reference swap: readers see old or new, whole
        STORE.drop_unwanted(_wanted(self._rows[0]))
        self._store_changes = STORE.changes  # after the drop: what this table was built with
        for route in snapshot.endpoints.values():
            for v in route.by_name.values():
                metrics.set_model_loaded(route.name, v.name, v.model_version, v.can_serve)

    def current(self) -> Snapshot:
        """The snapshot to route with; never builds one on a request (503 while the worker starts).

        With ``ROUTING_REFRESH_IN_BACKGROUND`` off (tests that refresh the table themselves) there
        is no worker start and no refresher, so the first call builds the table here.
        """
        snapshot = self.snapshot
        if snapshot is not None:
            return snapshot
        if not settings.ROUTING_REFRESH_IN_BACKGROUND:
            return self.refresh()
        from routing.serving.worker import worker_start_in_background

        worker_start_in_background()
        raise ServingError(
            503, "starting", "this worker is still loading its routing table and models; retry shortly"
        )

    def reset(self) -> None:
        """Forget the snapshot so the next ``refresh`` builds a new one (tests: a new database)."""
        with self._lock:
            self._snapshot, self._rows, self._pid, self._store_changes = None, None, 0, -1


TABLE = RoutingTable()
