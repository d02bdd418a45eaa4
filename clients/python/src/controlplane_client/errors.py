"""The one exception the SDK raises: what the control plane refused, or that it could not be reached."""

from __future__ import annotations

from typing import Any

# DRF answers 401/403/404 of its own with {"detail": ...}; these give them a code like ours.
_CODES_BY_STATUS = {401: "unauthenticated", 403: "forbidden", 404: "not_found", 405: "method_not_allowed"}


class ControlPlaneError(Exception):
    """A refused or failed call: ``status`` (HTTP, 0 when unreachable), ``code`` for machines,
    ``message`` for people, ``details`` as the server sent them."""

    def __init__(self, status: int, code: str, message: str, details: Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details

    def __str__(self) -> str:
        where = f"HTTP {self.status}" if self.status else "no answer"
        return f"{self.message} ({where}, {self.code})"

    @classmethod
    def from_response(cls, status: int, body: Any, text: str) -> ControlPlaneError:
        """Read the contract's ``{"error": {code, message, details}}``, DRF's ``{"detail"}``, or text."""
        if isinstance(body, dict) and isinstance(body.get("error"), dict):
            error = body["error"]
            return cls(
                status,
                str(error.get("code") or _CODES_BY_STATUS.get(status, "error")),
                str(error.get("message") or text),
                error.get("details"),
            )
        if isinstance(body, dict) and "detail" in body:
            return cls(status, _CODES_BY_STATUS.get(status, "error"), str(body["detail"]))
        message = (text or "").strip()[:500] or f"HTTP {status} without a body"
        return cls(status, _CODES_BY_STATUS.get(status, "http_error"), message)
