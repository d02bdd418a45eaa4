"""The control API's refusals in the OpenAPI schema: every operation documents the error body.

``api_exception_handler`` answers every DRF refusal as ``{"error": {...}}``; this post-processing
hook (``SPECTACULAR_SETTINGS``) says so in the schema: each /api/v1/ operation lists 401 and 403,
operations on one object 404, operations with a body 400, all with the ``Error`` component,
unless the view already documents that status.
"""

from __future__ import annotations

from typing import Any

ERROR_COMPONENT = "Error"
ERROR_SCHEMA = {
    "type": "object",
    "description": "Every refusal of the API: a machine code, a message for people, optional details.",
    "properties": {
        "error": {
            "type": "object",
            "properties": {
                "code": {"type": "string", "examples": ["not_authenticated", "invalid", "not_found"]},
                "message": {"type": "string"},
                "details": {"nullable": True},
            },
            "required": ["code", "message", "details"],
        }
    },
    "required": ["error"],
}
_WHY = {
    400: "Invalid input: the error body names each field and what is wrong with it.",
    401: "No or invalid credentials (session or `Authorization: Token ...`).",
    403: "Authenticated, but lacking the permission this operation needs.",
    404: "No such object.",
}


def _statuses(path: str, method: str, operation: dict[str, Any]) -> list[int]:
    wanted = [401, 403]
    if "{" in path:
        wanted.append(404)
    if method in ("post", "put", "patch") or "requestBody" in operation:
        wanted.append(400)
    return wanted


def add_error_responses(result: dict[str, Any], generator: Any, request: Any, public: bool) -> dict[str, Any]:
    """drf-spectacular post-processing hook: the error body on every control-API operation."""
    result.setdefault("components", {}).setdefault("schemas", {})[ERROR_COMPONENT] = ERROR_SCHEMA
    content = {"application/json": {"schema": {"$ref": f"#/components/schemas/{ERROR_COMPONENT}"}}}
    for path, item in result.get("paths", {}).items():
        if not path.startswith("/api/"):
            continue
        for method, operation in item.items():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            for status in _statuses(path, method, operation):
                operation["responses"].setdefault(
                    str(status), {"description": _WHY[status], "content": content}
                )
    return result
