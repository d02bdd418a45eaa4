"""``POST /predict/<endpoint>`` and ``POST /predict``: HTTP in and out around the data plane.

Authenticate against the in-memory token copy, parse, hand the route and payload to
``routing.serving.dataplane``, answer; then, off the response path, record metrics, queue the
prediction-log row and maybe a shadow copy. No database query, no MLflow call, no synchronous
write. Every refusal is a ``ServingError`` rendered as the contract's error body; any other
exception is a bug, and still answers that body (500 ``internal_error``) and counts as
``server_error``, never Django's HTML page.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt

from monitoring import metrics
from routing.serving import auth, dataplane
from routing.serving.errors import PayloadError, ServingError
from routing.serving.payloads import Limits, Payload, parse
from routing.serving.prediction_log import BUFFER, LogEntry, json_default, logged_inputs, request_json_for_log
from routing.serving.shadow import RUNNER, ShadowJob
from routing.serving.table import TABLE, EndpointRoute

logger = logging.getLogger(__name__)


def json_answer(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> HttpResponse:
    content = json.dumps(body, default=json_default).encode()
    response = HttpResponse(content, status=status, content_type="application/json")
    # With the length known the server keeps the connection open without chunked framing.
    response["Content-Length"] = str(len(content))
    for name, value in (headers or {}).items():
        response[name] = value
    return response


def error_answer(exc: ServingError) -> HttpResponse:
    response = json_answer(
        exc.status, {"error": {"code": exc.code, "message": exc.message, "details": exc.details}}
    )
    if exc.status == 429:
        response["Retry-After"] = "1"
    return response


def read_body(request: HttpRequest, limit: int | None = None) -> bytes:
    """The request body, refused (413) past ``limit`` bytes (``PREDICT_MAX_BODY_BYTES`` by default)
    before reading more than one byte over it; /feedback reads its body the same way."""
    limit = settings.PREDICT_MAX_BODY_BYTES if limit is None else limit
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


def _count_failure(endpoint: str | None, exc: ServingError, started: float) -> None:
    # Unknown endpoint names are not counted: they would make the endpoint label unbounded.
    if endpoint is not None:
        metrics.record_prediction(endpoint, "", "", "server_error" if exc.status >= 500 else "client_error")
        metrics.record_request(endpoint, time.perf_counter() - started)


def _record(
    request_id: str, route: EndpointRoute, answer: dataplane.Answer, body: bytes, payload: Payload, **who: str
) -> None:
    """Metrics, the prediction-log row and shadow copies: queued, never written on this thread."""
    served, batch = answer.variant, answer.batch
    request_json = request_json_for_log(body, payload)
    metrics.record_prediction(route.name, served.name, served.model_version, "success", answer.seconds)
    BUFFER.record(
        LogEntry(
            request_id=request_id,
            endpoint=route.name,
            variant=served.name,
            model_name=served.model_name,
            model_version=served.model_version,
            **logged_inputs(request_json, batch.columns, batch.rows),
            outputs=answer.outputs,
            latency_ms=answer.seconds * 1000,
            fallback_from=answer.fallback_from,
            **who,
        )
    )
    if route.shadows:
        RUNNER.maybe_mirror(
            lambda v: ShadowJob(
                route.name, v, batch, payload, answer.outputs, request_id, who["unit_key"], request_json
            ),
            route.shadows,
        )


@csrf_exempt
def predict(request: HttpRequest, endpoint: str | None = None) -> HttpResponse:
    """The routed, MLflow-compatible scoring endpoint."""
    started = time.perf_counter()
    name = endpoint or settings.DEFAULT_ENDPOINT
    counted: list[str] = []  # the endpoint name, once it is known to be ours (a bounded label)
    try:
        return _predict(request, name, started, counted)
    except ServingError as exc:
        _count_failure(counted[0] if counted else None, exc, started)
        return error_answer(exc)
    except Exception:
        request_id = getattr(request, "request_id", "")
        logger.exception("/predict/%s failed unexpectedly (request %s)", name[:100], request_id)
        exc = ServingError(
            500,
            "internal_error",
            "the server failed to answer this request; quote the request id when you report it",
            {"request_id": request_id},
        )
        _count_failure(counted[0] if counted else None, exc, started)
        return error_answer(exc)


def _predict(request: HttpRequest, name: str, started: float, counted: list[str]) -> HttpResponse:
    if request.method != "POST":
        raise ServingError(405, "method_not_allowed", "use POST")
    snapshot = TABLE.current()
    token = auth.authenticate(request.META.get("HTTP_AUTHORIZATION", ""), snapshot)
    route = snapshot.endpoints.get(name)
    if route is None:
        raise ServingError(404, "endpoint_not_found", f"no endpoint named {name[:200]!r}")
    counted.append(name)
    auth.authorize(token, name)
    auth.throttle(token, name)
    body = read_body(request)
    payload = parse(body, request.META.get("CONTENT_TYPE", ""), Limits.from_settings(settings))
    unit_key = request.META.get("HTTP_X_UNIT_KEY", "") or payload.unit_key
    forced = request.META.get("HTTP_X_VARIANT", "")
    answer = dataplane.predict(
        route, payload, forced=forced, unit_key=unit_key, can_override=token.can_override
    )
    request_id = getattr(request, "request_id", "")
    served = answer.variant
    response = json_answer(
        200,
        {
            "predictions": answer.outputs,
            "endpoint": name,
            "variant": served.name,
            "model": served.model_name,
            "model_version": served.model_version,
            "request_id": request_id,
        },
        {"X-Variant": served.name, "X-Model-Version": str(served.model_version)},
    )
    _record(request_id, route, answer, body, payload, unit_key=unit_key, token_name=token.name)
    metrics.record_request(name, time.perf_counter() - started)
    return response
