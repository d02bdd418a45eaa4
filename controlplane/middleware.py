"""Gives every request an ``X-Request-ID`` that the audit trail and the logs can quote."""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Callable
from contextvars import ContextVar

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.urls import Resolver404, get_resolver

# Services read the current request id from here, so audit rows carry it without every
# caller threading it through.
current_request_id: ContextVar[str] = ContextVar("current_request_id", default="")

# A client may pass its own id (tracing across services); anything else is replaced so a
# header cannot smuggle arbitrary text into logs and audit rows.
_ACCEPTABLE = re.compile(r"^[A-Za-z0-9._:-]{8,128}$")

request_logger = logging.getLogger("controlplane.request")
# Probes and scrapes would drown the request lines (one every few seconds per replica).
_UNLOGGED = ("/healthz", "/readyz", "/metrics", "/static/")


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
        started = time.perf_counter()
        try:
            response = self.get_response(request)
            response["X-Request-ID"] = request_id
            if not request.path.startswith(_UNLOGGED):
                _log_request(request, response, request_id, time.perf_counter() - started)
        finally:
            current_request_id.reset(token)
        return response


def _log_request(request: HttpRequest, response: HttpResponse, request_id: str, seconds: float) -> None:
    """One line per request: the fields a log pipeline filters on (see ``controlplane.logs``)."""
    match = getattr(request, "resolver_match", None)
    kwargs = match.kwargs if match is not None else {}
    endpoint = kwargs.get("endpoint") or kwargs.get("name") or ""
    if not endpoint and match is not None and match.url_name == "predict-default":
        endpoint = settings.DEFAULT_ENDPOINT
    request_logger.info(
        "%s %s %s",
        request.method,
        request.path[:200],
        response.status_code,
        extra={
            "request_id": request_id,
            "method": request.method,
            "path": request.path[:200],
            "status": response.status_code,
            "latency_ms": round(seconds * 1000, 3),
            "endpoint": str(endpoint)[:100],
            "variant": response.headers.get("X-Variant", ""),
            "model_version": response.headers.get("X-Model-Version", ""),
        },
    )


class ServingPathMiddleware:
    """Answers the scoring routes (``settings.SERVING_URLCONF``) with only the request id around them.

    First in ``MIDDLEWARE``. The rest of the stack is there for people and the control API:
    sessions, CSRF, messages, static files, clickjacking headers and django-prometheus' HTTP
    series. On /predict it is a quarter of the CPU of a one-row request (about 0.25 ms of ~1 ms,
    see ``bench/``), and /predict has its own series (``controlplane_*``). What the scoring
    routes keep: ``X-Request-ID``, the ``ALLOWED_HOSTS`` check and ``X-Content-Type-Options``.
    Every other path goes down the full stack unchanged.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        self.resolver = get_resolver(settings.SERVING_URLCONF)
        self.serve = RequestIdMiddleware(self._view)

    def __call__(self, request: HttpRequest) -> HttpResponse:
        try:
            request.resolver_match = self.resolver.resolve(request.path_info)
        except Resolver404:
            return self.get_response(request)
        return self.serve(request)

    @staticmethod
    def _view(request: HttpRequest) -> HttpResponse:
        request.get_host()  # DisallowedHost (400) for a Host outside ALLOWED_HOSTS, as for every path
        match = request.resolver_match
        response = match.func(request, *match.args, **match.kwargs)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        return response
