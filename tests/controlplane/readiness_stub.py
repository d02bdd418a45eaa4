"""A readiness check that always reports a problem, to test /readyz's aggregation."""

from __future__ import annotations


def not_ready() -> list[str]:
    return ["stub says not ready"]
