"""Parse every MLflow scoring format into one shape: column names plus row-major data.

Accepted like ``mlflow models serve``'s ``/invocations``: a JSON object with exactly one of
``dataframe_split``, ``dataframe_records``, ``instances`` or ``inputs`` (plus optional ``params``
and our ``unit_key``), or ``text/csv`` with a header row. Everything a client can get wrong
raises ``PayloadError`` carrying the HTTP status and a message that says what is wrong; the
view turns it into the contract's error body, so bad input is never a 500.

Any token holder can send any body up to ``PREDICT_MAX_BODY_BYTES``, so every step here is linear
in the body's size (``bench/hostile_input.py`` measures it) and the row, column and cell limits
(``Limits``) are checked before the rows are copied: a hostile shape (thousands of distinct keys,
a million one-value rows) costs one pass, never a square.
"""

from __future__ import annotations

import csv
import gc
import io
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from pydantic_core import from_json

from routing.serving.errors import PayloadError

FORMATS = ("dataframe_split", "dataframe_records", "instances", "inputs")
ALLOWED_KEYS = {*FORMATS, "params", "unit_key"}


@dataclass
class Payload:
    """Rows as parsed: ``columns`` is None when the client sent positional rows."""

    columns: list[str] | None
    rows: list[list[Any]]
    params: dict[str, Any] = field(default_factory=dict)
    unit_key: str = ""
    format: str = ""


@dataclass(frozen=True)
class Limits:
    """How big a parsed request may be; None: no limit (logged requests read back for drift)."""

    max_rows: int | None = None
    max_columns: int | None = None
    max_cells: int | None = None

    @classmethod
    def from_settings(cls, settings: Any) -> Limits:
        return cls(settings.PREDICT_MAX_ROWS, settings.PREDICT_MAX_COLUMNS, settings.PREDICT_MAX_CELLS)

    def check_rows(self, rows: int) -> None:
        if self.max_rows is not None and rows > self.max_rows:
            raise PayloadError(413, "too_many_rows", f"{rows} rows; at most {self.max_rows} per request")

    def check_columns(self, columns: int) -> None:
        if self.max_columns is not None and columns > self.max_columns:
            raise PayloadError(
                413, "too_many_columns", f"{columns} columns; at most {self.max_columns} per request"
            )

    def check_containers(self, body: bytes) -> None:
        """Before decoding: a request within the limits holds at most a list or object per row and
        per cell (a tensor's rows), so a body with more brackets cannot be one. Counting them is a
        C scan (~1 ms for 5 MB); decoding a million nested lists first cost over a second.
        """
        if self.max_rows is None or self.max_cells is None:
            return
        most = self.max_rows + self.max_cells + 16
        found = body.count(b"[") + body.count(b"{")
        if found > most:
            raise PayloadError(
                413,
                "too_many_cells",
                f"the body holds {found} lists and objects; a request within the limits holds at most {most}",
            )

    def check_cells(self, cells: int) -> None:
        if self.max_cells is not None and cells > self.max_cells:
            raise PayloadError(
                413,
                "too_many_cells",
                f"more than {self.max_cells} values; at most {self.max_cells} per request",
            )


NO_LIMITS = Limits()


def _bad(message: str, details: Any = None, code: str = "invalid_payload") -> PayloadError:
    return PayloadError(400, code, message, details)


def brief(names: Iterable[Any], shown: int = 10) -> str:
    """The first few of a possibly huge list of names, for a message that stays small."""
    names = list(names)
    head = ", ".join(map(str, names[:shown]))
    return head if len(names) <= shown else f"{head} (and {len(names) - shown} more)"


def _reject_constant(name: str) -> float:
    # json.loads accepts NaN/Infinity literals, which are not JSON and never valid features.
    raise _bad(f"non-finite number {name} is not allowed", code="non_finite")


def parse(body: bytes, content_type: str, limits: Limits = NO_LIMITS) -> Payload:
    """Parse a request body by its content type (``application/json`` or ``text/csv``)."""
    media = content_type.split(";", 1)[0].strip().lower()
    if media == "application/json":
        return parse_json(body, limits)
    if media == "text/csv":
        return parse_csv(body, limits)
    raise PayloadError(
        415,
        "unsupported_media_type",
        f"Content-Type {media or '(none)'!r} is not supported; use application/json or text/csv",
        {"supported": ["application/json", "text/csv"]},
    )


def decode_json(body: bytes) -> Any:
    """Decode a JSON body: pydantic_core's Rust decoder, the standard library for what it refuses.

    ``pydantic_core.from_json`` (jiter) reads a 100 x 30 ``dataframe_split`` batch about 6x faster
    than ``json.loads`` (the stdlib decoder was a quarter of a 100-row request's CPU). It refuses
    some bodies the standard library reads (a UTF-8 byte-order mark, UTF-16 and UTF-32, escaped
    lone surrogates, nesting past 200 levels) and words its errors differently, so on any refusal
    ``json.loads`` decides: a client gets the same document, or the same 400, with either.
    NaN and Infinity are refused by both (``allow_inf_nan=False``, then ``parse_constant``).

    The cyclic garbage collector is paused meanwhile: decoding a 5 MB body of tiny rows creates
    millions of lists, and each collection the allocations trigger walks all of them again, which
    made the decode superlinear (measured: 34 us/KB at 16 KB, 490 us/KB at 5 MB). A decoded
    document is a tree, never a cycle, so the collector has nothing to find in it.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        try:
            return from_json(body, allow_inf_nan=False)
        except ValueError:
            return json.loads(body, parse_constant=_reject_constant)
    finally:
        if enabled:
            gc.enable()


def parse_json(body: bytes, limits: Limits = NO_LIMITS) -> Payload:
    limits.check_containers(body)
    try:
        doc = decode_json(body)
    except PayloadError:
        raise
    except (ValueError, UnicodeDecodeError) as exc:
        raise _bad(f"body is not valid JSON: {exc}", code="invalid_json") from None
    except RecursionError:
        raise _bad("body is nested too deeply", code="invalid_json") from None
    return parse_document(doc, limits)


def parse_document(doc: Any, limits: Limits = NO_LIMITS) -> Payload:
    """A decoded JSON scoring request (also how logged requests are read back for drift)."""
    if not isinstance(doc, dict):
        raise _bad(f"body must be a JSON object with one of {', '.join(FORMATS)}; got {type(doc).__name__}")
    unknown = [k for k in doc if k not in ALLOWED_KEYS]
    if unknown:
        raise _bad(f"unknown top-level field(s): {brief(sorted(unknown))}", {"allowed": sorted(ALLOWED_KEYS)})
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
    columns, rows = _PARSERS[fmt](doc[fmt], limits)
    return Payload(columns, rows, params, _unit_key(doc.get("unit_key", "")), fmt)


def _unit_key(value: Any) -> str:
    if not isinstance(value, (str, int)) or isinstance(value, bool):
        raise _bad("unit_key must be a string")
    if isinstance(value, int):
        if not -(2**63) <= value < 2**64:
            raise _bad("unit_key must be a string (or an integer of at most 64 bits)")
        return str(value)
    if len(value) > MAX_UNIT_KEY_CHARS:
        raise _bad(f"unit_key is {len(value)} characters long; at most {MAX_UNIT_KEY_CHARS}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate (\\ud800): valid JSON, not valid text
        raise _bad("unit_key is not valid Unicode text (it contains a lone surrogate)") from None
    return value


# Sticky keys are user or session ids: long enough for any of those, short enough to hash cheaply.
MAX_UNIT_KEY_CHARS = 512


def _check_widths(rows: list[Any], what: str, limits: Limits) -> None:
    """Every row a list, no wider than ``max_columns``; all of them within ``max_cells``."""
    cells = 0
    for i, row in enumerate(rows):
        if not isinstance(row, list):
            raise _bad(f"{what}[{i}] must be a list of values", {"row": i})
        limits.check_columns(len(row))
        cells += len(row)
    limits.check_cells(cells)


def _split(value: Any, limits: Limits) -> tuple[list[str] | None, list[list[Any]]]:
    if not isinstance(value, dict):
        raise _bad("dataframe_split must be an object with 'columns' and 'data'")
    extra = sorted(set(value) - {"columns", "data", "index"})
    if extra:
        raise _bad(f"dataframe_split has unknown field(s): {', '.join(extra)}")
    data = value.get("data")
    if not isinstance(data, list):
        raise _bad("dataframe_split.data must be a list of rows")
    limits.check_rows(len(data))
    columns = value.get("columns")
    if columns is not None and (
        not isinstance(columns, list) or not all(isinstance(c, str) for c in columns)
    ):
        raise _bad("dataframe_split.columns must be a list of strings")
    if columns is None:
        _check_widths(data, "dataframe_split.data", limits)
        return None, data
    limits.check_columns(len(columns))
    limits.check_cells(len(columns) * len(data))
    width = len(columns)
    for i, row in enumerate(data):
        if not isinstance(row, list):
            raise _bad(f"dataframe_split.data[{i}] must be a list of values", {"row": i})
        if len(row) != width:
            raise _bad(f"dataframe_split.data[{i}] has {len(row)} values for {width} columns", {"row": i})
    return columns, data


def _records(
    value: Any, limits: Limits, what: str = "dataframe_records"
) -> tuple[list[str] | None, list[list[Any]]]:
    """Row objects: every row must have the first row's keys, so one pass decides (no key union)."""
    if not isinstance(value, list):
        raise _bad(f"{what} must be a list of row objects")
    limits.check_rows(len(value))
    if value and all(isinstance(r, list) for r in value):
        _check_widths(value, what, limits)
        return None, value  # positional rows (instances as a 2-D tensor)
    if not value:
        return [], []
    if not isinstance(value[0], dict):
        raise _bad(f"{what}[0] must be an object mapping column to value", {"row": 0})
    columns = list(value[0])
    limits.check_columns(len(columns))
    limits.check_cells(len(columns) * len(value))
    rows: list[list[Any]] = []
    for i, row in enumerate(value):
        if not isinstance(row, dict):
            raise _bad(f"{what}[{i}] must be an object mapping column to value", {"row": i})
        try:
            rows.append([row[c] for c in columns])
        except KeyError as exc:
            column = exc.args[0]
            raise _bad(
                f"{what}[{i}] has no value for column {column!r}", {"row": i, "column": column}
            ) from None
        if len(row) != len(columns):  # a key the first row does not have: row 0 lacks it
            column = next(k for k in row if k not in value[0])
            raise _bad(f"{what}[0] has no value for column {column!r}", {"row": 0, "column": column})
    return columns, rows


def _columnar(value: dict[str, Any], what: str, limits: Limits) -> tuple[list[str], list[list[Any]]]:
    columns = list(value)
    limits.check_columns(len(columns))
    lists = [v if isinstance(v, list) else [v] for v in value.values()]
    lengths = {len(v) for v in lists}
    if len(lengths) > 1:
        raise _bad(
            f"{what}: columns have different lengths",
            {c: len(v) for c, v in list(zip(columns, lists, strict=True))[:20]},
        )
    if lists:
        limits.check_rows(len(lists[0]))
        limits.check_cells(len(lists[0]) * len(columns))
    return columns, [list(r) for r in zip(*lists, strict=True)]


def _instances(
    value: Any, limits: Limits, what: str = "instances"
) -> tuple[list[str] | None, list[list[Any]]]:
    if isinstance(value, dict):
        return _columnar(value, what, limits)
    if isinstance(value, list):
        if value and not isinstance(value[0], (list, dict)):
            limits.check_columns(len(value))
            return None, [value]  # a single positional row
        return _records(value, limits, what)
    raise _bad(f"{what} must be a list of rows or an object of columns")


def _inputs(value: Any, limits: Limits) -> tuple[list[str] | None, list[list[Any]]]:
    return _instances(value, limits, "inputs")


_PARSERS = {
    "dataframe_split": _split,
    "dataframe_records": _records,
    "instances": _instances,
    "inputs": _inputs,
}


def csv_value(text: str) -> Any:
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return text


def parse_csv(body: bytes, limits: Limits = NO_LIMITS) -> Payload:
    """CSV with a header row, as ``mlflow models serve`` reads it (numbers parsed as numbers)."""
    try:
        text = body.decode("utf-8-sig")
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
    limits.check_rows(len(data))
    limits.check_columns(len(header))
    limits.check_cells(len(header) * len(data))
    rows: list[list[Any]] = []
    for i, line in enumerate(data):
        if len(line) != len(header):
            raise _bad(
                f"CSV line {i + 2} has {len(line)} values for {len(header)} columns", code="invalid_csv"
            )
        rows.append([csv_value(v) for v in line])
    return Payload(header, rows, {}, "", "csv")
