"""The serving half's one error type: every refusal of a scoring route, as the contract's JSON body.

A ``ServingError`` carries the HTTP status, a machine ``code``, a message for people and optional
details; the view renders it as ``{"error": {"code", "message", "details"}}`` and counts it as a
``client_error`` (4xx) or ``server_error`` (5xx). The subclasses only say where it came from.
"""

from __future__ import annotations

from typing import Any


class ServingError(Exception):
    """A refused scoring request: ``status``, ``code``, ``message`` and optional ``details``."""

    def __init__(self, status: int, code: str, message: str, details: Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details


class PayloadError(ServingError):
    """The body is wrong: its format, size, media type, or a value the signature refuses (4xx)."""


class AccessDenied(ServingError):
    """The caller may not: no or unknown token (401), not allowed here (403), throttled (429)."""


class NoVariantAvailable(ServingError):
    """No variant of the endpoint can answer: paused, no traffic, nothing loaded (503)."""

    def __init__(self, message: str) -> None:
        super().__init__(503, "no_variant_available", message)
