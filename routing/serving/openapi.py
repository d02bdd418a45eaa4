"""The scoring routes in the OpenAPI schema: ``POST /predict/{endpoint}`` and ``POST /predict``.

They are plain Django views (no DRF, no session: see ``controlplane.middleware``), so
drf-spectacular cannot see them; this post-processing hook (``SPECTACULAR_SETTINGS``) adds them
with their request bodies, headers, answers and the contract's error body. The body schema is as
strict as ``routing.serving.payloads``: exactly one format, no unknown fields, the row, column and
cell limits of the settings; which columns and types a model takes is its signature's business
and answers 400 ``unknown_column`` / ``wrong_type``.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings

FORMATS = ("dataframe_split", "dataframe_records", "instances", "inputs")
ENDPOINT_PATTERN = "^[-a-zA-Z0-9_]{1,100}$"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _schemas() -> dict[str, Any]:
    rows, columns = settings.PREDICT_MAX_ROWS, settings.PREDICT_MAX_COLUMNS
    value = {
        "description": "A cell: a number, a string, a boolean or null (as the model's signature allows).",
        "nullable": True,
        "oneOf": [{"type": "number"}, {"type": "string"}, {"type": "boolean"}],
    }
    row = {"type": "array", "items": _ref("PredictValue"), "minItems": 1, "maxItems": columns}
    record = {
        "type": "object",
        "additionalProperties": _ref("PredictValue"),
        "minProperties": 1,
        "maxProperties": columns,
    }
    table = {"type": "array", "minItems": 1, "maxItems": rows}
    split = {
        "type": "object",
        "additionalProperties": False,
        "required": ["data"],
        "properties": {
            "columns": {
                "type": "array",
                "items": {"type": "string"},
                "uniqueItems": True,
                "maxItems": columns,
            },
            "data": {**table, "items": _ref("PredictRow")},
            "index": {"type": "array", "maxItems": rows},
        },
    }
    tensor = {
        "oneOf": [
            {**table, "items": _ref("PredictRow")},
            {**table, "items": _ref("PredictRecord")},
            {
                "type": "object",
                "additionalProperties": {**table, "items": _ref("PredictValue")},
                "minProperties": 1,
            },
        ]
    }
    request: dict[str, Any] = {
        "type": "object",
        "description": "An MLflow scoring request: exactly one of " + ", ".join(FORMATS) + ".",
        "additionalProperties": False,
        "properties": {
            "dataframe_split": split,
            "dataframe_records": {**table, "items": _ref("PredictRecord")},
            "instances": tensor,
            "inputs": tensor,
            "params": {
                "type": "object",
                "description": "Inference parameters the model's signature declares.",
            },
            "unit_key": {
                "type": "string",
                "maxLength": 512,
                "description": "Sticky-assignment key (or X-Unit-Key).",
            },
        },
        "oneOf": [{"required": [f]} for f in FORMATS],
    }
    for fmt in FORMATS:  # exactly one: each alternative forbids the other three
        alternative = next(a for a in request["oneOf"] if a["required"] == [fmt])
        alternative["not"] = {"anyOf": [{"required": [o]} for o in FORMATS if o != fmt]}
    answer = {
        "type": "object",
        "required": ["predictions", "endpoint", "variant", "model", "model_version", "request_id"],
        "properties": {
            "predictions": {"type": "array", "items": {}},
            "endpoint": {"type": "string"},
            "variant": {"type": "string"},
            "model": {"type": "string"},
            "model_version": {"type": "integer"},
            "request_id": {"type": "string"},
        },
    }
    error = {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["code", "message"],
                "properties": {"code": {"type": "string"}, "message": {"type": "string"}, "details": {}},
            }
        },
    }
    return {
        "PredictValue": value,
        "PredictRow": row,
        "PredictRecord": record,
        "PredictRequest": request,
        "PredictResponse": answer,
        "PredictError": error,
    }


_REFUSALS = {
    "400": "The body is not a scoring request, or a value does not fit the model's signature.",
    "401": "No bearer token, or an unknown or revoked one.",
    "403": "The token may not use this endpoint, or may not force a variant (X-Variant).",
    "404": "No endpoint of that name.",
    "413": "The body, rows, columns or values exceed the configured limits.",
    "415": "Content-Type is neither application/json nor text/csv.",
    "429": "The token used up its requests for this second (Retry-After: 1).",
    "500": "An unexpected failure (never caused by input); the request id identifies it.",
    "503": "No variant of the endpoint can answer (paused, or nothing loaded).",
}


def _operation(with_endpoint: bool) -> dict[str, Any]:
    parameters: list[dict[str, Any]] = [
        {
            "name": "X-Unit-Key",
            "in": "header",
            "required": False,
            "schema": {"type": "string", "maxLength": 512},
        },
        {
            "name": "X-Variant",
            "in": "header",
            "required": False,
            "schema": {"type": "string", "maxLength": 100},
            "description": "Force a variant (tokens allowed to override only).",
        },
    ]
    if with_endpoint:
        parameters.insert(
            0,
            {
                "name": "endpoint",
                "in": "path",
                "required": True,
                "schema": {"type": "string", "pattern": ENDPOINT_PATTERN},
            },
        )
    error = {"application/json": {"schema": _ref("PredictError")}}
    responses: dict[str, Any] = {
        "200": {
            "description": "Predictions and who made them.",
            "content": {"application/json": {"schema": _ref("PredictResponse")}},
        },
        **{status: {"description": text, "content": error} for status, text in _REFUSALS.items()},
    }
    return {
        "operationId": "predict_endpoint" if with_endpoint else "predict_default",
        "summary": "Score rows on an endpoint" if with_endpoint else "Score rows on the default endpoint",
        "tags": ["predict"],
        "security": [{"serviceToken": []}],
        "parameters": parameters,
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": _ref("PredictRequest")},
                "text/csv": {
                    "schema": {"type": "string", "description": "A header row naming the columns, then rows."}
                },
            },
        },
        "responses": responses,
    }


def add_scoring_paths(result: dict[str, Any], generator: Any, request: Any, public: bool) -> dict[str, Any]:
    """drf-spectacular post-processing hook: the schema with the scoring routes added."""
    components = result.setdefault("components", {})
    components.setdefault("schemas", {}).update(_schemas())
    components.setdefault("securitySchemes", {})["serviceToken"] = {
        "type": "http",
        "scheme": "bearer",
        "description": "A service token (create_service_token, or the admin).",
    }
    paths = result.setdefault("paths", {})
    paths["/predict/{endpoint}"] = {"post": _operation(True)}
    paths["/predict"] = {"post": _operation(False)}
    return result
