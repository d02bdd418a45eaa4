"""Check parsed rows against a version's signature before any model runs.

The signature is MLflow's column-based schema JSON (``[{"name", "type", "required"}]``). Rows
come back in signature order; when every column is numeric they also come back as one float64
NumPy array, which is what the inference fast path feeds the native model. Every problem is a
``PayloadError`` (400) naming the column and row.
"""

from __future__ import annotations

import math
import sys
from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np

from routing.serving.errors import PayloadError
from routing.serving.payloads import Payload, brief

_NUMERIC = {"double", "float", "long", "integer"}
_INTEGRAL = {"long", "integer"}
# A long/integer column holds a 64-bit integer (what MLflow's schema enforcement and pandas use);
# a double column any number a float64 can hold. A 400-digit integer fits neither.
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_FLOAT_MAX = sys.float_info.max


@dataclass(frozen=True)
class Schema:
    """A signature prepared once per version: names, types, which are required."""

    names: tuple[str, ...]
    types: tuple[str, ...]
    required: tuple[bool, ...]
    index: dict[str, int]
    all_numeric: bool

    @classmethod
    def from_signature(cls, signature_inputs: list[dict[str, Any]] | None) -> Schema | None:
        if not signature_inputs:
            return None
        names = tuple(str(c.get("name", "")) for c in signature_inputs)
        types = tuple(str(c.get("type", "")) for c in signature_inputs)
        required = tuple(bool(c.get("required", True)) for c in signature_inputs)
        return cls(names, types, required, {n: i for i, n in enumerate(names)}, set(types) <= _NUMERIC)


@dataclass
class Batch:
    """Validated rows in signature order; ``array`` is set when every column is numeric."""

    columns: list[str]
    rows: list[list[Any]]
    array: np.ndarray | None
    params: dict[str, Any]

    def __len__(self) -> int:
        return len(self.rows)


def _bad(code: str, message: str, details: Any = None) -> PayloadError:
    return PayloadError(400, code, message, details)


def _reorder(payload: Payload, schema: Schema) -> list[list[Any]]:
    rows = payload.rows
    if payload.columns is None:
        width = len(schema.names)
        for i, row in enumerate(rows):
            if len(row) != width:
                raise _bad(
                    "wrong_width",
                    f"row {i} has {len(row)} values; the model takes {width} columns "
                    f"({', '.join(schema.names[:5])}{', ...' if width > 5 else ''})",
                    {"row": i, "expected": width},
                )
        return rows
    columns = payload.columns
    given = set(columns)
    if len(given) != len(columns):
        # One counting pass (list.count per column was quadratic in a body of repeated names).
        dupes = sorted(c for c, n in Counter(columns).items() if n > 1)
        raise _bad("duplicate_column", f"column(s) given twice: {brief(dupes)}", {"columns": dupes[:20]})
    unknown = [c for c in columns if c not in schema.index]
    if unknown:
        raise _bad(
            "unknown_column",
            f"unknown column(s) {brief(map(repr, unknown))}; the model's columns are "
            f"{', '.join(schema.names[:5])}{', ...' if len(schema.names) > 5 else ''}",
            {"unknown": unknown[:20], "expected": list(schema.names)},
        )
    missing = [n for n, req in zip(schema.names, schema.required, strict=True) if req and n not in given]
    if missing:
        raise _bad(
            "missing_column",
            f"missing required column(s): {', '.join(map(repr, missing))}",
            {"missing": missing},
        )
    if tuple(columns) == schema.names:
        return rows
    where = {c: i for i, c in enumerate(columns)}
    positions = [where.get(n, -1) for n in schema.names]
    return [[row[p] if p >= 0 else None for p in positions] for row in rows]


def _value_ok(value: Any, kind: str) -> bool:
    t = type(value)
    if kind in ("double", "float"):
        return t is float or (t is int and -_FLOAT_MAX <= value <= _FLOAT_MAX)
    if kind in _INTEGRAL:
        return (t is int or (t is float and value.is_integer())) and _INT64_MIN <= value <= _INT64_MAX
    if kind == "boolean":
        return t is bool
    if kind == "string":
        return t is str
    return True  # binary/datetime and others: left to MLflow's own enforcement


def _find_problem(rows: list[list[Any]], schema: Schema) -> PayloadError | None:
    """The slow path: find the first bad cell and name it (None when every cell is fine)."""
    for i, row in enumerate(rows):
        for j, (value, kind) in enumerate(zip(row, schema.types, strict=True)):
            name = schema.names[j]
            if value is None:
                if schema.required[j]:
                    raise _bad(
                        "missing_value", f"row {i}: column {name!r} is null", {"row": i, "column": name}
                    )
                continue
            if not _value_ok(value, kind):
                raise _wrong_value(i, name, kind, value)
            if type(value) is float and not math.isfinite(value):
                raise _bad(
                    "non_finite",
                    f"row {i}: column {name!r} is {value}, not a finite number",
                    {"row": i, "column": name},
                )
    return None


def _shown(value: Any) -> str:
    """A value as a message may quote it: never the whole of a huge string, number or list."""
    if isinstance(value, (list, dict)):
        return f"of {len(value)} items"
    if type(value) is int and not -(10**30) < value < 10**30:
        return f"of about {int(value.bit_length() * 0.30103) + 1} digits"
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _wrong_value(row: int, name: str, kind: str, value: Any) -> PayloadError:
    details = {"row": row, "column": name, "expected": kind}
    t = type(value)
    if kind in _INTEGRAL and (t is int or (t is float and value.is_integer())):
        message = f"row {row}: column {name!r} is {_shown(value)}, beyond a 64-bit integer"
        return _bad("out_of_range", message, details)
    if kind in ("double", "float") and t is int:
        return _bad(
            "out_of_range",
            f"row {row}: column {name!r} is an integer {_shown(value)}, beyond a float64",
            details,
        )
    message = f"row {row}: column {name!r} expects {kind}, got {t.__name__} {_shown(value)}"
    return _bad("wrong_type", message, details)


def validate(payload: Payload, schema: Schema | None, max_rows: int = 10_000) -> Batch:
    """Rows in signature order, checked cell by cell; raises ``PayloadError`` naming the problem."""
    if not payload.rows:
        raise _bad("empty_batch", "the batch has no rows")
    if len(payload.rows) > max_rows:
        raise PayloadError(413, "too_many_rows", f"{len(payload.rows)} rows; at most {max_rows} per request")
    if schema is None:
        return Batch(payload.columns or [], payload.rows, None, payload.params)
    rows = _reorder(payload, schema)
    if schema.all_numeric and all(r for r in schema.required):
        # Hot path: one set comprehension decides whether every cell is a plain number.
        kinds = {type(v) for row in rows for v in row}
        integral = float in kinds and any(k in _INTEGRAL for k in schema.types)
        if not kinds <= {float, int} or integral:
            _raise_if_bad(rows, schema)
        try:
            array = np.array(rows, dtype=np.float64)
        except OverflowError:  # an integer beyond float64: the slow path names it
            _raise_if_bad(rows, schema)
            raise
        if not np.isfinite(array).all() or (int in kinds and _beyond_int64(array, schema)):
            _raise_if_bad(rows, schema)
        return Batch(list(schema.names), rows, array, payload.params)
    _raise_if_bad(rows, schema)
    return Batch(list(schema.names), rows, None, payload.params)


def _beyond_int64(array: np.ndarray, schema: Schema) -> bool:
    """Whether an integral column holds a value a 64-bit integer cannot (vectorised, hot path)."""
    integral = [i for i, kind in enumerate(schema.types) if kind in _INTEGRAL]
    return bool(integral) and bool((np.abs(array[:, integral]) >= 2.0**63).any())


def _raise_if_bad(rows: list[list[Any]], schema: Schema) -> None:
    problem = _find_problem(rows, schema)
    if problem is not None:
        raise problem
