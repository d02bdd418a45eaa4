"""The data plane: choose a variant, validate for its signature, invoke it, fall back to the champion.

One pure step shared by the /predict view and the shadow runner: an endpoint's route (from the
in-memory routing table) and a parsed payload in, an ``Answer`` out. No HTTP, no database, no
MLflow: tests call ``predict`` directly. Everything the client got wrong is a ``PayloadError``
or ``AccessDenied``; an endpoint that cannot answer is ``NoVariantAvailable`` (503).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from django.conf import settings

from monitoring import metrics
from routing.serving import inference
from routing.serving.errors import AccessDenied, NoVariantAvailable, PayloadError
from routing.serving.payloads import Payload
from routing.serving.remote import RemoteRejected, RemoteUnavailable
from routing.serving.table import EndpointRoute, VariantRoute, pick_random, pick_sticky
from routing.serving.validation import Batch, validate


class VariantNotLoaded(Exception):
    """An in-process variant whose model is not in memory (still loading, or failed to load)."""


@dataclass(frozen=True, slots=True)
class Answer:
    """Who answered, with which rows, what, and how long the model took."""

    variant: VariantRoute
    batch: Batch
    outputs: list[Any]
    seconds: float
    fallback_from: str = ""  # the variant that was chosen and failed, when one did


def choose(
    route: EndpointRoute, *, forced: str = "", unit_key: str = "", can_override: bool = False
) -> VariantRoute:
    """``forced`` (``X-Variant``, override tokens only), else the unit's sticky variant, else a draw."""
    if forced:
        if not can_override:
            raise AccessDenied(403, "forbidden", "this token may not force a variant with X-Variant")
        variant = route.by_name.get(forced)
        if variant is None:
            raise PayloadError(
                400, "unknown_variant", f"no serving variant {forced!r}", {"variants": sorted(route.by_name)}
            )
        return variant
    variant = pick_sticky(route, unit_key) if unit_key else pick_random(route)
    if variant is None:
        raise NoVariantAvailable(f"endpoint {route.name} has no variant with traffic")
    return variant


def batch_for(variant: VariantRoute, payload: Payload, batch: Batch | None = None) -> Batch:
    """``batch`` when it already fits ``variant``'s signature, else the payload validated for it."""
    if batch is not None and (variant.schema is None or tuple(batch.columns) == variant.schema.names):
        return batch
    return validate(payload, variant.schema, settings.PREDICT_MAX_ROWS)


def invoke(variant: VariantRoute, batch: Batch) -> list[Any]:
    """Call the variant: its remote scoring server, or its model in this worker's memory."""
    if variant.remote is not None:
        return variant.remote.predict(batch)
    if variant.model is None:
        raise VariantNotLoaded(f"{variant.name} not loaded: {variant.load_error or 'loading'}")
    return inference.predict(variant.model, batch)


def _timed(variant: VariantRoute, batch: Batch) -> tuple[list[Any], float]:
    started = time.perf_counter()
    outputs = invoke(variant, batch)
    return outputs, time.perf_counter() - started


def _fallback_reason(exc: Exception) -> str:
    """The bounded ``reason`` label of a fallback: not loaded, remote backend failing, or a failed call."""
    if isinstance(exc, VariantNotLoaded):
        return "not_loaded"
    # Down, breaker open, 3xx, or a 4xx that is not a validation error (a 404 from a moved server).
    return "remote_unavailable" if isinstance(exc, RemoteUnavailable) else "predict_failed"


def answer(route: EndpointRoute, variant: VariantRoute, payload: Payload, batch: Batch) -> Answer:
    """Predict with ``variant``; if it is not the champion and fails, the champion answers."""
    try:
        outputs, seconds = _timed(variant, batch)
        return Answer(variant, batch, outputs, seconds)
    except RemoteRejected as exc:
        raise PayloadError(400, "rejected_by_model", str(exc)) from None
    except Exception as exc:
        champion = route.champion
        if champion is None or champion is variant or not champion.can_serve:
            raise NoVariantAvailable(f"{variant.name} cannot serve: {type(exc).__name__}: {exc}") from None
        reason = _fallback_reason(exc)
        metrics.record_fallback(route.name, variant.name, reason)
    batch = batch_for(champion, payload, batch)
    try:
        outputs, seconds = _timed(champion, batch)
    except Exception as exc:
        raise NoVariantAvailable(
            f"champion {champion.name} cannot serve: {type(exc).__name__}: {exc}"
        ) from None
    return Answer(champion, batch, outputs, seconds, fallback_from=variant.name)


def predict(
    route: EndpointRoute,
    payload: Payload,
    *,
    forced: str = "",
    unit_key: str = "",
    can_override: bool = False,
) -> Answer:
    """The whole inference step for one request on one endpoint."""
    if not route.is_active:
        raise NoVariantAvailable(f"endpoint {route.name} is paused")
    variant = choose(route, forced=forced, unit_key=unit_key, can_override=can_override)
    batch = validate(payload, variant.schema, settings.PREDICT_MAX_ROWS)
    return answer(route, variant, payload, batch)
