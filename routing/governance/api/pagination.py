"""``?limit=`` and ``?offset=`` as strict as the schema says: whole numbers in range, else a 400.

DRF's ``LimitOffsetPagination`` ignores a bad ``limit`` and passes any ``offset`` to the database,
where ``?offset=172655205463658299392`` overflowed SQLite's integer and answered an HTML 500
(issue 10, item 9). Here both are checked, and the schema states the same bounds.
"""

from __future__ import annotations

from typing import Any

from rest_framework.exceptions import ValidationError
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.request import Request

MAX_LIMIT = 1000
MAX_OFFSET = 2**31 - 1


def _bounded(request: Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    if not raw.isdigit() or len(raw) > 10 or not low <= int(raw) <= high:
        raise ValidationError({name: [f"must be a whole number from {low} to {high}; got {raw[:40]!r}"]})
    return int(raw)


class BoundedLimitOffsetPagination(LimitOffsetPagination):
    """Limit 1..1000 (default 100), offset 0..2^31-1; anything else is refused, never clamped."""

    max_limit = MAX_LIMIT

    def get_limit(self, request: Request) -> int:
        return _bounded(request, self.limit_query_param, self.default_limit, 1, MAX_LIMIT)

    def get_offset(self, request: Request) -> int:
        return _bounded(request, self.offset_query_param, 0, 0, MAX_OFFSET)

    def get_schema_operation_parameters(self, view: Any) -> list[dict[str, Any]]:
        parameters = super().get_schema_operation_parameters(view)
        bounds = {self.limit_query_param: (1, MAX_LIMIT), self.offset_query_param: (0, MAX_OFFSET)}
        for parameter in parameters:
            low, high = bounds[parameter["name"]]
            parameter["schema"].update({"minimum": low, "maximum": high})
        return parameters
