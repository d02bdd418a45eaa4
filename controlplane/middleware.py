"""Gives every request an ``X-Request-ID`` that the audit trail and the logs can quote."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from contextvars import ContextVar

from django.http import HttpRequest, HttpResponse

# Services read the current request id from here, so audit rows carry it without every
# caller threading it through.
current_request_id: ContextVar[str] = ContextVar("current_request_id", default="")

# A client may pass its own id (tracing across services); anything else is replaced so a
# header cannot smuggle arbitrary text into logs and audit rows.
_ACCEPTABLE = re.compile(r"^[A-Za-z0-9._:-]{8,128}$")


def new_request_id() -> str:
    return uuid.uuid4().hex


class RequestIdMiddleware:
    """Sets ``request.request_id`` and echoes it as the ``X-Request-ID`` response header."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        incoming = request.headers.get("X-Request-ID", "")
        request_id = incoming if _ACCEPTABLE.match(incoming) else new_request_id()
        request.request_id = request_id  # type: ignore[attr-defined]
        token = current_request_id.set(request_id)
        try:
            response = self.get_response(request)
        finally:
            current_request_id.reset(token)
        response["X-Request-ID"] = request_id
        return response
