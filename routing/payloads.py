"""Parse every MLflow scoring format into one shape: column names plus row-major data.

Accepted like ``mlflow models serve``'s ``/invocations``: a JSON object with exactly one of
``dataframe_split``, ``dataframe_records``, ``instances`` or ``inputs`` (plus optional ``params``
and our ``unit_key``), or ``text/csv`` with a header row. Everything a client can get wrong
raises ``PayloadError`` carrying the HTTP status and a message that says what is wrong; the
view turns it into the contract's error body, so bad input is never a 500.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from typing import Any

FORMATS = ("dataframe_split", "dataframe_records", "instances", "inputs")
ALLOWED_KEYS = {*FORMATS, "params", "unit_key"}


class PayloadError(Exception):
    """A client error: ``status`` (4xx), a machine ``code``, a message and optional details."""

    def __init__(self, status: int, code: str, message: str, details: Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details


@dataclass
class Payload:
    """Rows as parsed: ``columns`` is None when the client sent positional rows."""

    columns: list[str] | None
    rows: list[list[Any]]
    params: dict[str, Any] = field(default_factory=dict)
    unit_key: str = ""
    format: str = ""


def _bad(message: str, details: Any = None, code: str = "invalid_payload") -> PayloadError:
    return PayloadError(400, code, message, details)


def _reject_constant(name: str) -> float:
    # json.loads accepts NaN/Infinity literals, which are not JSON and never valid features.
    raise _bad(f"non-finite number {name} is not allowed", code="non_finite")


def parse(body: bytes, content_type: str) -> Payload:
    """Parse a request body by its content type (``application/json`` or ``text/csv``)."""
    media = content_type.split(";", 1)[0].strip().lower()
    if media == "application/json":
        return parse_json(body)
    if media == "text/csv":
        return parse_csv(body)
    raise PayloadError(
        415,
        "unsupported_media_type",
        f"Content-Type {media or '(none)'!r} is not supported; use application/json or text/csv",
        {"supported": ["application/json", "text/csv"]},
    )


def parse_json(body: bytes) -> Payload:
    try:
        doc = json.loads(body, parse_constant=_reject_constant)
    except PayloadError:
        raise
    except (ValueError, UnicodeDecodeError) as exc:
        raise _bad(f"body is not valid JSON: {exc}", code="invalid_json") from None
    except RecursionError:
        raise _bad("body is nested too deeply", code="invalid_json") from None
    return parse_document(doc)


def parse_document(doc: Any) -> Payload:
    """A decoded JSON scoring request (also how logged requests are read back for drift)."""
    if not isinstance(doc, dict):
        raise _bad(f"body must be a JSON object with one of {', '.join(FORMATS)}; got {type(doc).__name__}")
    unknown = sorted(k for k in doc if k not in ALLOWED_KEYS)
    if unknown:
        raise _bad(f"unknown top-level field(s): {', '.join(unknown)}", {"allowed": sorted(ALLOWED_KEYS)})
    present = [k for k in FORMATS if k in doc]
    if len(present) != 1:
        raise _bad(
            f"body must have exactly one of {', '.join(FORMATS)}; got {len(present)}",
            {"present": present},
        )
    fmt = present[0]
    params = doc.get("params", {})
    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise _bad("params must be a JSON object")
    unit_key = doc.get("unit_key", "")
    if not isinstance(unit_key, (str, int)) or isinstance(unit_key, bool):
        raise _bad("unit_key must be a string")
    columns, rows = _PARSERS[fmt](doc[fmt])
    return Payload(columns, rows, params, str(unit_key), fmt)


def _split(value: Any) -> tuple[list[str] | None, list[list[Any]]]:
    if not isinstance(value, dict):
        raise _bad("dataframe_split must be an object with 'columns' and 'data'")
    extra = sorted(set(value) - {"columns", "data", "index"})
    if extra:
        raise _bad(f"dataframe_split has unknown field(s): {', '.join(extra)}")
    data = value.get("data")
    if not isinstance(data, list):
        raise _bad("dataframe_split.data must be a list of rows")
    columns = value.get("columns")
    if columns is not None and (
        not isinstance(columns, list) or not all(isinstance(c, str) for c in columns)
    ):
        raise _bad("dataframe_split.columns must be a list of strings")
    rows: list[list[Any]] = []
    for i, row in enumerate(data):
        if not isinstance(row, list):
            raise _bad(f"dataframe_split.data[{i}] must be a list of values", {"row": i})
        if columns is not None and len(row) != len(columns):
            raise _bad(
                f"dataframe_split.data[{i}] has {len(row)} values for {len(columns)} columns",
                {"row": i},
            )
        rows.append(row)
    return columns, rows


def _records(value: Any, what: str = "dataframe_records") -> tuple[list[str] | None, list[list[Any]]]:
    if not isinstance(value, list):
        raise _bad(f"{what} must be a list of row objects")
    if value and all(isinstance(r, list) for r in value):
        return None, value  # positional rows (instances as a 2-D tensor)
    columns: list[str] = []
    seen: set[str] = set()
    for i, row in enumerate(value):
        if not isinstance(row, dict):
            raise _bad(f"{what}[{i}] must be an object mapping column to value", {"row": i})
        for key in row:
            if key not in seen:
                seen.add(key)
                columns.append(key)
    missing = object()
    rows = [[row.get(c, missing) for c in columns] for row in value]
    for i, row in enumerate(rows):
        for c, v in zip(columns, row, strict=True):
            if v is missing:
                raise _bad(f"{what}[{i}] has no value for column {c!r}", {"row": i, "column": c})
    return columns, rows


def _columnar(value: dict[str, Any], what: str) -> tuple[list[str], list[list[Any]]]:
    columns = list(value)
    lists = [v if isinstance(v, list) else [v] for v in value.values()]
    lengths = {len(v) for v in lists}
    if len(lengths) > 1:
        raise _bad(
            f"{what}: columns have different lengths",
            {c: len(v) for c, v in zip(columns, lists, strict=True)},
        )
    return columns, [list(r) for r in zip(*lists, strict=True)]


def _instances(value: Any, what: str = "instances") -> tuple[list[str] | None, list[list[Any]]]:
    if isinstance(value, dict):
        return _columnar(value, what)
    if isinstance(value, list):
        if value and not isinstance(value[0], (list, dict)):
            return None, [value]  # a single positional row
        return _records(value, what)
    raise _bad(f"{what} must be a list of rows or an object of columns")


def _inputs(value: Any) -> tuple[list[str] | None, list[list[Any]]]:
    return _instances(value, "inputs")


_PARSERS = {
    "dataframe_split": _split,
    "dataframe_records": _records,
    "instances": _instances,
    "inputs": _inputs,
}


def _csv_value(text: str) -> Any:
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return text


def parse_csv(body: bytes) -> Payload:
    """CSV with a header row, as ``mlflow models serve`` reads it (numbers parsed as numbers)."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise _bad("CSV body is not UTF-8", code="invalid_csv") from None
    try:
        lines = list(csv.reader(io.StringIO(text)))
    except csv.Error as exc:
        raise _bad(f"CSV body cannot be read: {exc}", code="invalid_csv") from None
    lines = [line for line in lines if line]
    if not lines:
        raise _bad("CSV body is empty; the first line must name the columns", code="empty_batch")
    header, data = lines[0], lines[1:]
    rows: list[list[Any]] = []
    for i, line in enumerate(data):
        if len(line) != len(header):
            raise _bad(
                f"CSV line {i + 2} has {len(line)} values for {len(header)} columns", code="invalid_csv"
            )
        rows.append([_csv_value(v) for v in line])
    return Payload(header, rows, {}, "", "csv")
