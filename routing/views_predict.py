"""``POST /predict/<endpoint>`` and ``POST /predict``: the hot path.

Parse, authenticate against the in-memory token copy, pick a variant from the in-memory routing
table, validate against its signature, call the already-loaded model, answer. No database query,
no MLflow call, no synchronous write: the prediction log and shadows are queued for background
threads. Every client mistake is a ``PayloadError`` rendered as the contract's error body.
"""

from __future__ import annotations

import json
import time
from typing import Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt

from monitoring import metrics
from routing import auth, inference
from routing.payloads import Payload, PayloadError, parse
from routing.prediction_log import BUFFER, LogEntry, json_default, logged_inputs, request_json_for_log
from routing.remote import RemoteRejected
from routing.shadow import RUNNER, ShadowJob
from routing.table import TABLE, EndpointRoute, VariantRoute, pick_random, pick_sticky
from routing.validation import Batch, validate


class NoVariant(Exception):
    """No variant of the endpoint can answer (503)."""


def _json(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> HttpResponse:
    response = HttpResponse(
        json.dumps(body, default=json_default), status=status, content_type="application/json"
    )
    for name, value in (headers or {}).items():
        response[name] = value
    return response


def _error(status: int, code: str, message: str, details: Any = None) -> HttpResponse:
    response = _json(status, {"error": {"code": code, "message": message, "details": details}})
    if status == 429:
        response["Retry-After"] = "1"
    return response


def _read_body(request: HttpRequest) -> bytes:
    limit = settings.PREDICT_MAX_BODY_BYTES
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        raise PayloadError(400, "invalid_request", "Content-Length is not a number") from None
    if declared > limit:
        raise PayloadError(413, "payload_too_large", f"body of {declared} bytes; at most {limit} bytes")
    try:
        body = request.read(limit + 1)
    except RequestDataTooBig:
        body = b"x" * (limit + 1)
    if len(body) > limit:
        raise PayloadError(413, "payload_too_large", f"body is larger than {limit} bytes")
    return body


def _choose(request: HttpRequest, route: EndpointRoute, unit_key: str, can_override: bool) -> VariantRoute:
    forced = request.META.get("HTTP_X_VARIANT", "")
    if forced:
        if not can_override:
            raise PayloadError(403, "forbidden", "this token may not force a variant with X-Variant")
        variant = route.by_name.get(forced)
        if variant is None:
            raise PayloadError(
                400, "unknown_variant", f"no serving variant {forced!r}", {"variants": sorted(route.by_name)}
            )
        return variant
    variant = pick_sticky(route, unit_key) if unit_key else pick_random(route)
    if variant is None:
        raise NoVariant(f"endpoint {route.name} has no variant with traffic")
    return variant


def _call(variant: VariantRoute, batch: Batch) -> list[Any]:
    if variant.remote is not None:
        return variant.remote.predict(batch)
    if variant.model is None:
        raise NoVariant(f"{variant.name} not loaded: {variant.load_error or 'loading'}")
    return inference.predict(variant.model, batch)


def _batch_for(variant: VariantRoute, payload: Payload, batch: Batch | None) -> Batch:
    if batch is not None and (variant.schema is None or tuple(batch.columns) == variant.schema.names):
        return batch
    return validate(payload, variant.schema, settings.PREDICT_MAX_ROWS)


def _serve(
    route: EndpointRoute, variant: VariantRoute, payload: Payload, batch: Batch
) -> tuple[VariantRoute, Batch, list[Any], float, str]:
    """Predict with ``variant``; if it is not the champion and fails, the champion answers."""
    started = time.perf_counter()
    try:
        return variant, batch, _call(variant, batch), time.perf_counter() - started, ""
    except RemoteRejected as exc:
        raise PayloadError(400, "rejected_by_model", str(exc)) from None
    except Exception as exc:
        champion = route.champion
        if champion is None or champion is variant or not champion.can_serve:
            raise NoVariant(f"{variant.name} cannot serve: {type(exc).__name__}: {exc}") from None
        reason = "not_loaded" if isinstance(exc, NoVariant) else "predict_failed"
        metrics.record_fallback(route.name, variant.name, reason)
    batch = _batch_for(champion, payload, batch)
    started = time.perf_counter()
    try:
        outputs = _call(champion, batch)
    except Exception as exc:
        raise NoVariant(f"champion {champion.name} cannot serve: {type(exc).__name__}: {exc}") from None
    return champion, batch, outputs, time.perf_counter() - started, variant.name


def _count_failure(endpoint: str | None, outcome: str, started: float) -> None:
    # Unknown endpoint names are not counted: they would make the endpoint label unbounded.
    if endpoint is not None:
        metrics.record_prediction(endpoint, "", "", outcome)
        metrics.record_request(endpoint, time.perf_counter() - started)


@csrf_exempt
def predict(request: HttpRequest, endpoint: str | None = None) -> HttpResponse:
    """The routed, MLflow-compatible scoring endpoint."""
    started = time.perf_counter()
    name = endpoint or settings.DEFAULT_ENDPOINT
    known = False
    try:
        if request.method != "POST":
            raise PayloadError(405, "method_not_allowed", "use POST")
        snapshot = TABLE.current()
        token = auth.authenticate(request.META.get("HTTP_AUTHORIZATION", ""), snapshot)
        route = snapshot.endpoints.get(name)
        if route is None:
            raise PayloadError(404, "endpoint_not_found", f"no endpoint named {name!r}")
        known = True
        auth.authorize(token, name)
        auth.throttle(token)
        body = _read_body(request)
        payload = parse(body, request.META.get("CONTENT_TYPE", ""))
        if not route.is_active:
            raise NoVariant(f"endpoint {name} is paused")
        unit_key = request.META.get("HTTP_X_UNIT_KEY", "") or payload.unit_key
        variant = _choose(request, route, unit_key, token.can_override)
        batch = validate(payload, variant.schema, settings.PREDICT_MAX_ROWS)
        served, batch, outputs, seconds, failed = _serve(route, variant, payload, batch)
    except PayloadError as exc:
        _count_failure(name if known else None, "client_error", started)
        return _error(exc.status, exc.code, exc.message, exc.details)
    except NoVariant as exc:
        _count_failure(name if known else None, "server_error", started)
        return _error(503, "no_variant_available", str(exc))
    request_id = getattr(request, "request_id", "")
    request_json = request_json_for_log(body, payload)
    metrics.record_prediction(name, served.name, served.model_version, "success", seconds)
    BUFFER.record(
        LogEntry(
            request_id=request_id,
            endpoint=name,
            variant=served.name,
            model_name=served.model_name,
            model_version=served.model_version,
            **logged_inputs(request_json, batch.columns, batch.rows),
            outputs=outputs,
            latency_ms=seconds * 1000,
            unit_key=unit_key,
            token_name=token.name,
            fallback_from=failed,
        )
    )
    if route.shadows:
        RUNNER.maybe_mirror(
            lambda v: ShadowJob(name, v, batch, payload, outputs, request_id, unit_key, request_json),
            route.shadows,
        )
    response = _json(
        200,
        {
            "predictions": outputs,
            "endpoint": name,
            "variant": served.name,
            "model": served.model_name,
            "model_version": served.model_version,
            "request_id": request_id,
        },
        {"X-Variant": served.name, "X-Model-Version": str(served.model_version)},
    )
    metrics.record_request(name, time.perf_counter() - started)
    return response
