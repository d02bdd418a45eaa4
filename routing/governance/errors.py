"""The one exception every routing service raises for input it refuses.

Front doors translate it: the admin into a message, the API into ``{"error": {...}}`` with
``status``. Keeping it in its own module lets ``routing.governance.permissions`` raise it too.
"""

from __future__ import annotations


class GovernanceError(Exception):
    """A refused change: ``code`` for machines, ``message`` for people, ``status`` for HTTP."""

    def __init__(self, code: str, message: str, *, status: int = 400) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status

    def __str__(self) -> str:
        return self.message
