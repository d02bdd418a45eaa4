"""``POST /hooks/mlflow``: MLflow registry webhooks, verified, then a sync of the named model queued.

MLflow signs ``{delivery_id}.{timestamp}.{raw body}`` with HMAC-SHA256 and sends
``X-MLflow-Signature: v1,<base64>``. We refuse missing, wrong and stale signatures, so a
forged or replayed delivery changes nothing. A verified delivery enqueues ``sync_model(name)``
(at most one waiting per model) and answers 202 at once: the web worker that serves /predict
never waits on MLflow. MLflow keeps no outbox, so the periodic ``sync_registry`` task remains
the safety net for deliveries lost in a restart.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import time

from django.conf import settings
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from registry.tasks import sync_model_request

log = logging.getLogger(__name__)


def _error(status: int, code: str, message: str) -> JsonResponse:
    return JsonResponse({"error": {"code": code, "message": message, "details": None}}, status=status)


def signature_for(secret: str, delivery_id: str, timestamp: str, body: bytes) -> str:
    """The signature MLflow sends for this delivery (also used by tests to forge one)."""
    signed = f"{delivery_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret.encode(), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def _verify(request: HttpRequest) -> JsonResponse | None:
    secret = settings.MLFLOW_WEBHOOK_SECRET
    if not secret:
        return _error(503, "webhook_not_configured", "MLFLOW_WEBHOOK_SECRET is not set on this server.")
    signature = request.headers.get("X-MLflow-Signature", "")
    timestamp = request.headers.get("X-MLflow-Timestamp", "")
    delivery_id = request.headers.get("X-MLflow-Delivery-Id", "")
    if not (signature and timestamp and delivery_id):
        return _error(
            401,
            "missing_signature",
            "X-MLflow-Signature, X-MLflow-Timestamp and X-MLflow-Delivery-Id are all required.",
        )
    try:
        age = abs(time.time() - int(timestamp))
    except ValueError:
        return _error(400, "bad_timestamp", "X-MLflow-Timestamp must be Unix seconds.")
    if age > settings.MLFLOW_WEBHOOK_MAX_AGE_SECONDS:
        return _error(
            401,
            "stale_delivery",
            f"Delivery is {int(age)}s old; at most {settings.MLFLOW_WEBHOOK_MAX_AGE_SECONDS}s accepted.",
        )
    expected = signature_for(secret, delivery_id, timestamp, request.body)
    if not hmac.compare_digest(expected, signature):
        return _error(401, "bad_signature", "X-MLflow-Signature does not match the body.")
    return None


@csrf_exempt
@require_POST
def mlflow_webhook(request: HttpRequest) -> JsonResponse:
    refused = _verify(request)
    if refused is not None:
        return refused
    try:
        payload = json.loads(request.body)
        name = payload["data"]["name"]
        event = f"{payload['entity']}.{payload['action']}"
    except (ValueError, KeyError, TypeError):
        return _error(400, "bad_payload", "Expected MLflow webhook JSON with entity, action and data.name.")
    if not isinstance(name, str) or not name or len(name) > 256:
        return _error(400, "bad_payload", "data.name must be a non-empty string of at most 256 characters.")
    try:
        queued = sync_model_request(name)
    except Exception as exc:  # the broker is down; 503 makes MLflow retry the delivery
        log.warning("webhook %s for %s: could not queue the sync: %s", event, name, exc)
        return _error(503, "queue_unavailable", f"Cannot queue the sync of {name!r}: {exc}")
    return JsonResponse({"event": event, "model": name, "queued": queued}, status=202)
