"""What goes over the wire: scoring bodies for /predict, batch bodies for jobs, feedback items.

pandas is optional: a DataFrame is recognised by its methods, so importing this module never
imports pandas.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

SCORING_KEYS = ("dataframe_split", "dataframe_records", "instances", "inputs")
BATCH_TYPES = {".csv": "text/csv", ".ndjson": "application/x-ndjson", ".jsonl": "application/x-ndjson"}


def is_dataframe(data: Any) -> bool:
    return hasattr(data, "to_json") and hasattr(data, "columns") and hasattr(data, "to_csv")


def dataframe_split(frame: Any) -> dict[str, Any]:
    """``{"columns", "data"}`` of a DataFrame; pandas' own JSON writer turns NumPy types and NaN into JSON."""
    split = json.loads(frame.to_json(orient="split", index=False, date_format="iso"))
    return {"columns": split["columns"], "data": split["data"]}


def scoring_body(data: Any, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The MLflow scoring JSON for ``data``: a DataFrame, a list of row dicts, or a ready scoring dict."""
    if is_dataframe(data):
        body: dict[str, Any] = {"dataframe_split": dataframe_split(data)}
    elif isinstance(data, Mapping) and sum(k in data for k in SCORING_KEYS) == 1:
        body = dict(data)
    elif isinstance(data, list) and data and all(isinstance(row, Mapping) for row in data):
        body = {"dataframe_records": data}
    else:
        raise TypeError(
            "predict() takes a pandas DataFrame, a non-empty list of row dicts, or an MLflow scoring dict "
            f"with exactly one of {', '.join(SCORING_KEYS)}; got {type(data).__name__}."
        )
    if params:
        body["params"] = dict(params)
    return body


def batch_body(data: Any, content_type: str | None = None) -> tuple[bytes, str]:
    """The body and content type of a batch job: CSV or JSON lines.

    ``data``: a DataFrame (sent as CSV), an iterable of row dicts (JSON lines), a file path
    (``.csv``, ``.ndjson``, ``.jsonl``), or ``str``/``bytes`` with ``content_type`` given.
    """
    if is_dataframe(data):
        return data.to_csv(index=False).encode(), "text/csv"
    if isinstance(data, os.PathLike):
        path = Path(data)
        kind = content_type or BATCH_TYPES.get(path.suffix.lower())
        if kind is None:
            raise ValueError(f"{path.name}: name a content_type, or use a {', '.join(BATCH_TYPES)} file.")
        return path.read_bytes(), kind
    if isinstance(data, (str, bytes)):
        if content_type not in BATCH_TYPES.values():
            raise ValueError(
                f"Raw batch bodies need content_type='text/csv' or 'application/x-ndjson' (got {content_type!r})."
            )
        return (data.encode() if isinstance(data, str) else data), content_type
    if isinstance(data, Iterable) and not isinstance(data, Mapping):
        lines = [json.dumps(dict(row)) for row in data]
        if not lines:
            raise ValueError("A batch job needs at least one row.")
        return ("\n".join(lines) + "\n").encode(), "application/x-ndjson"
    raise TypeError(f"submit_job() cannot send a {type(data).__name__}; see its docstring for what it takes.")


def ground_truth(
    request_id: str, label: Any = None, *, value: float | None = None, row: int = 0
) -> dict[str, Any]:
    """A feedback item: the true ``label`` (classification) or ``value`` (regression) of one prediction row."""
    if (label is None) == (value is None):
        raise ValueError("Give exactly one of label= or value=.")
    item: dict[str, Any] = {"request_id": request_id, "row": row}
    item.update({"label": label} if label is not None else {"value": value})
    return item


def outcome(unit_key: str, metric: str, value: float) -> dict[str, Any]:
    """A feedback item: a business outcome (``metric`` = ``value``) observed for a unit."""
    return {"unit_key": unit_key, "metric": metric, "value": value}
