"""``POST /feedback/<endpoint>``: the same front door as /predict (token, scope, rate limit,
error body), then ``experiments.feedback`` checks and queues the items.

200 with ``{"accepted", "updates", "rejected": [{"index", "status", "code", "message"}]}`` as soon
as the body can be read, whatever each item's fate; a whole-request error (401, 403, 404, 413,
415, 429, unreadable JSON) is the contract's ``{"error": {...}}`` body. Never Django's 500 page.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt

from experiments.feedback import BodyError, feedback_accept, parse_items
from routing.serving import auth
from routing.serving.errors import ServingError
from routing.serving.table import TABLE
from routing.serving.views import read_body

logger = logging.getLogger(__name__)


def _json(status: int, body: dict[str, Any]) -> HttpResponse:
    return HttpResponse(json.dumps(body), status=status, content_type="application/json")


def _error(status: int, code: str, message: str, details: Any = None) -> HttpResponse:
    response = _json(status, {"error": {"code": code, "message": message, "details": details}})
    if status == 429:
        response["Retry-After"] = "1"
    return response


@csrf_exempt
def feedback(request: HttpRequest, endpoint: str) -> HttpResponse:
    """Ground truth and outcomes for an endpoint's predictions."""
    try:
        if request.method != "POST":
            return _error(405, "method_not_allowed", "use POST")
        snapshot = TABLE.current()
        token = auth.authenticate(request.META.get("HTTP_AUTHORIZATION", ""), snapshot)
        if endpoint not in snapshot.endpoints:
            return _error(404, "endpoint_not_found", f"no endpoint named {endpoint[:200]!r}")
        auth.authorize(token, endpoint, scope="feedback")
        auth.throttle(token, endpoint)
        items = parse_items(
            read_body(request, settings.FEEDBACK_MAX_BODY_BYTES), request.META.get("CONTENT_TYPE", "")
        )
        return _json(200, feedback_accept(endpoint=endpoint, raw_items=items).as_json())
    except ServingError as exc:
        return _error(exc.status, exc.code, exc.message, exc.details)
    except BodyError as exc:
        return _error(exc.status, exc.code, exc.message)
    except Exception:
        request_id = getattr(request, "request_id", "")
        logger.exception("/feedback/%s failed unexpectedly (request %s)", endpoint[:100], request_id)
        return _error(
            500,
            "internal_error",
            "the server failed to answer this request; quote the request id when you report it",
            {"request_id": request_id},
        )
