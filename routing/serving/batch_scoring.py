"""Score a batch file in chunks: the same signature checks as /predict, bad rows set aside.

Reads a CSV (header first) or JSON-lines file as a stream, ``BATCH_CHUNK_ROWS`` rows at a time,
so memory is bounded by one chunk whatever the file's size. Each chunk is checked against the
version's signature with ``routing.serving.validation`` (the checks /predict runs); a row that
fails is written to the errors with its row number, file line and the validator's reason, and
the rest of the chunk is scored. Only a problem with the whole file (not UTF-8, a header naming
unknown or missing columns) fails the job.

For all-numeric signatures (the usual tabular model) a chunk is checked with NumPy: rows whose
cells are all finite numbers (integral where the signature says long/integer) go straight to the
model's native fast path (``routing.serving.inference``); only the others are checked one by one,
to name their problem.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import IO, Any

import numpy as np

from routing.serving.errors import PayloadError
from routing.serving.inference import LoadedModel, predict, predict_pyfunc
from routing.serving.payloads import Payload, brief, csv_value
from routing.serving.validation import Batch, Schema, validate

_INTEGRAL = {"long", "integer"}


class JobError(Exception):
    """The file as a whole cannot be scored (the job fails with this message)."""


@dataclass
class Chunk:
    """One chunk's outcome: ids and predictions of the scored rows, and the refused rows."""

    ids: list[int] = field(default_factory=list)
    predictions: list[Any] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)


class CountingReader:
    """A binary stream that counts what was read from it (the job's progress)."""

    def __init__(self, raw: IO[bytes]) -> None:
        self.raw, self.count = raw, 0

    def read(self, size: int = -1) -> bytes:
        data = self.raw.read(size)
        self.count += len(data)
        return data

    def readline(self, size: int = -1) -> bytes:
        data = self.raw.readline(size)
        self.count += len(data)
        return data

    def __iter__(self) -> Iterator[bytes]:
        while line := self.readline():
            yield line


def _error(row: int, line: int, code: str, message: str) -> dict[str, Any]:
    return {"row": row, "line": line, "code": code, "message": message}


def _header_checked(columns: list[str], schema: Schema) -> None:
    dupes = sorted({c for c in columns if columns.count(c) > 1})
    if dupes:
        raise JobError(f"the header names column(s) twice: {brief(dupes)}")
    unknown = [c for c in columns if c not in schema.index]
    if unknown:
        raise JobError(
            f"unknown column(s) {brief(map(repr, unknown))} in the header; the model's columns are "
            f"{', '.join(schema.names[:5])}{', ...' if len(schema.names) > 5 else ''}"
        )
    missing = [n for n, req in zip(schema.names, schema.required, strict=True) if req and n not in columns]
    if missing:
        raise JobError(f"the header lacks required column(s): {', '.join(map(repr, missing))}")


def _python_value(value: Any) -> Any:
    if isinstance(value, str):
        return csv_value(value)
    if isinstance(value, float) and value != value:  # NaN: an empty cell
        return None
    return value.item() if hasattr(value, "item") else value


def _rows_checked(
    model: LoadedModel,
    schema: Schema | None,
    ids: list[int],
    rows: list[list[Any]],
    lines: list[int],
    out: Chunk,
) -> None:
    """The general path: validate the rows (one by one only when the chunk has a bad one), score the good."""
    columns = list(schema.names) if schema else []
    try:
        good = validate(Payload(columns, rows, {}, "", "batch"), schema, max_rows=len(rows) or 1)
        keep = ids
    except PayloadError:
        keep, good_rows = [], []
        for row_id, row, line in zip(ids, rows, lines, strict=True):
            try:
                validate(Payload(columns, [row], {}, "", "batch"), schema, max_rows=1)
            except PayloadError as exc:
                out.errors.append(_error(row_id, line, exc.code, exc.message.replace("row 0: ", "")))
                continue
            keep.append(row_id)
            good_rows.append(row)
        if not good_rows:
            return
        good = validate(Payload(columns, good_rows, {}, "", "batch"), schema, max_rows=len(good_rows))
    out.ids.extend(keep)
    out.predictions.extend(predict(model, good))


def _numeric_ok(frame: Any, schema: Schema) -> tuple[np.ndarray, np.ndarray]:
    """The chunk as float64 and a mask of rows whose every cell passes the signature's checks."""
    import pandas as pd

    numeric = frame.apply(lambda col: col if col.dtype.kind in "iuf" else pd.to_numeric(col, errors="coerce"))
    array = numeric.to_numpy(dtype=np.float64)
    ok = np.isfinite(array).all(axis=1)
    for j, kind in enumerate(schema.types):
        if kind in _INTEGRAL:
            col = array[:, j]
            ok &= (np.floor(col) == col) & (np.abs(col) < 2.0**63)
    for name in schema.names:  # a cell pandas read as text is refused by /predict too
        if frame[name].dtype.kind not in "iuf":
            ok &= frame[name].map(lambda v: not isinstance(v, str) or csv_value(v) is not v).to_numpy()
    return array, ok


def score_csv_chunk(model: LoadedModel, frame: Any, first_row: int) -> Chunk:
    """Score one ``pandas.read_csv`` chunk; row ids count data rows from 0 (file line = id + 2)."""
    schema, out = model.schema, Chunk()
    ids = list(range(first_row, first_row + len(frame)))
    if schema is None:
        rows = [[_python_value(v) for v in r] for r in frame.itertuples(index=False)]
        _rows_checked(model, None, ids, rows, [i + 2 for i in ids], out)
        return out
    frame = frame.reindex(columns=list(schema.names))
    if schema.all_numeric and all(schema.required):
        array, ok = _numeric_ok(frame, schema)
        if ok.any():
            good_ids = [i for i, flag in zip(ids, ok, strict=True) if flag]
            out.ids.extend(good_ids)
            if model.kind in ("sklearn", "xgboost"):
                out.predictions.extend(predict(model, Batch(list(schema.names), [], array[ok], {})))
            else:
                out.predictions.extend(
                    predict_pyfunc(model, Batch(list(schema.names), array[ok].tolist(), None, {}))
                )
        if ok.all():
            return out
        bad = [j for j, flag in enumerate(ok) if not flag]
        rows = [[_python_value(v) for v in frame.iloc[j]] for j in bad]
        # Names each bad row's problem; a row the validator accepts after all is scored too.
        _rows_checked(model, schema, [ids[j] for j in bad], rows, [ids[j] + 2 for j in bad], out)
        return out
    rows = [[_python_value(v) for v in r] for r in frame.itertuples(index=False)]
    _rows_checked(model, schema, ids, rows, [i + 2 for i in ids], out)
    return out


def csv_chunks(stream: CountingReader, model: LoadedModel, chunk_rows: int) -> Iterator[Chunk]:
    """Every chunk of a CSV file; raises ``JobError`` for a file that cannot be read at all."""
    import pandas as pd

    try:
        reader = pd.read_csv(
            stream, chunksize=chunk_rows, skip_blank_lines=False, encoding="utf-8-sig", low_memory=False
        )
        first = 0
        for frame in reader:
            if first == 0 and model.schema is not None:
                _header_checked([str(c) for c in frame.columns], model.schema)
            yield score_csv_chunk(model, frame, first)
            first += len(frame)
    except (UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise JobError(f"the CSV file cannot be read: {type(exc).__name__}: {str(exc)[:300]}") from None


def _jsonl_row(text: bytes, schema: Schema | None) -> list[Any]:
    try:
        record = json.loads(text)
    except ValueError as exc:
        raise PayloadError(400, "invalid_json", f"not a JSON object: {exc}") from None
    if not isinstance(record, dict):
        raise PayloadError(400, "invalid_json", f"a line must be a JSON object, not {type(record).__name__}")
    if schema is None:
        return list(record.values())
    unknown = [k for k in record if k not in schema.index]
    if unknown:
        raise PayloadError(400, "unknown_column", f"unknown column(s) {brief(map(repr, unknown))}")
    return [record.get(n) for n in schema.names]


def jsonl_chunks(stream: CountingReader, model: LoadedModel, chunk_rows: int) -> Iterator[Chunk]:
    """Every chunk of a JSON-lines file (one object per line; row id = line - 1; blank lines skipped)."""
    ids: list[int] = []
    rows: list[list[Any]] = []
    refused: list[dict[str, Any]] = []
    for number, line in enumerate(stream):
        if not line.strip():
            continue
        try:
            rows.append(_jsonl_row(line, model.schema))
            ids.append(number)
        except PayloadError as exc:
            refused.append(_error(number, number + 1, exc.code, exc.message))
        if len(rows) + len(refused) >= chunk_rows:
            yield _jsonl_chunk(model, ids, rows, refused)
            ids, rows, refused = [], [], []
    if rows or refused:
        yield _jsonl_chunk(model, ids, rows, refused)


def _jsonl_chunk(
    model: LoadedModel, ids: list[int], rows: list[list[Any]], refused: list[dict[str, Any]]
) -> Chunk:
    out = Chunk(errors=list(refused))
    if rows:
        _rows_checked(model, model.schema, ids, rows, [i + 1 for i in ids], out)
    out.errors.sort(key=lambda e: e["row"])
    return out
