"""A readiness check that always reports a problem, to test /readyz's aggregation."""

from __future__ import annotations


def not_ready() -> dict:
    return {"name": "stub", "ready": False, "problems": ["stub says not ready"], "detail": "staff only"}
