"""One error body for the whole control API: DRF's own refusals in the project's shape.

DRF answers 401, 403, 404, 405, 406, 415, 429 and validation errors as ``{"detail": ...}`` or a
field map; ``api_exception_handler`` (``REST_FRAMEWORK["EXCEPTION_HANDLER"]``) rewrites every one
of them as ``{"error": {"code", "message", "details"}}``, the body /predict and the governed
operations already answer, keeping DRF's status and headers (``WWW-Authenticate``,
``Retry-After``, ``Allow``). A ``GovernanceError`` that reaches it becomes the same body with the
service's status, so a view that forgets to catch one still answers the contract.
"""

from __future__ import annotations

from typing import Any

from rest_framework import exceptions
from rest_framework.response import Response
from rest_framework.views import exception_handler

from routing.governance.errors import GovernanceError


def flat_errors(errors: Any, prefix: str = "") -> list[str]:
    """``{"weights": {"v1": ["must be at least 0"]}}`` as ``["weights.v1: must be at least 0"]``."""
    if isinstance(errors, dict):
        return [m for k, v in errors.items() for m in flat_errors(v, f"{prefix}.{k}" if prefix else str(k))]
    if isinstance(errors, list) and all(isinstance(e, str) for e in errors):
        return [f"{prefix}: {' '.join(errors)}" if prefix else " ".join(errors)]
    if isinstance(errors, list):
        return [m for e in errors for m in flat_errors(e, prefix)]
    return [f"{prefix}: {errors}" if prefix else str(errors)]


def error_body(code: str, message: str, details: Any = None) -> dict[str, Any]:
    """The contract's refusal: ``{"error": {"code", "message", "details"}}``."""
    return {"error": {"code": code, "message": message, "details": details}}


def _code_and_message(exc: exceptions.APIException) -> tuple[str, str, Any]:
    if isinstance(exc, exceptions.ValidationError):
        return "invalid", "Invalid input: " + "; ".join(flat_errors(exc.detail)), exc.detail
    codes = exc.get_codes()
    code = codes if isinstance(codes, str) else exc.default_code
    details = {"wait_seconds": exc.wait} if isinstance(exc, exceptions.Throttled) and exc.wait else None
    return code, str(exc.detail), details


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF's handler, then the body rewritten; ``None`` (a real 500) stays DRF's and Django's."""
    if isinstance(exc, GovernanceError):
        return Response(error_body(exc.code, exc.message), status=exc.status)
    response = exception_handler(exc, context)
    if response is None:
        return None
    # The default handler turned Http404 / Django's PermissionDenied into DRF exceptions.
    api_exc = exc if isinstance(exc, exceptions.APIException) else _as_api_exception(exc)
    code, message, details = _code_and_message(api_exc)
    response.data = error_body(code, message, details)
    return response


def _as_api_exception(exc: Exception) -> exceptions.APIException:
    from django.core.exceptions import PermissionDenied
    from django.http import Http404

    if isinstance(exc, Http404):
        return exceptions.NotFound()
    if isinstance(exc, PermissionDenied):
        return exceptions.PermissionDenied()
    return exceptions.APIException()
