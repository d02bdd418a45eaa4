"""Feedback in: parse a batch, check every item, attribute it, hand the good ones to the writer.

Two kinds of item: ground truth for one row of a prediction (``request_id``, ``row``, ``label``
or ``value``) and an outcome of a unit (``unit_key``, ``metric``, ``value``). Each item is
accepted or refused on its own (``Rejection``: index, HTTP status, code, message); only a body
that cannot be read at all refuses the whole request. Reads take two queries per batch (the
prediction-log rows named, the declared metrics) plus one for duplicates; writes are queued
(``experiments.feedback_writer``) and never happen on this thread.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.utils import timezone

from experiments import quality_metrics
from experiments.feedback_writer import FEEDBACK_BUFFER, FeedbackEntry
from experiments.models import Feedback, MetricKind, OutcomeMetric
from monitoring import metrics
from routing.models import PredictionLog
from routing.serving.prediction_log import hash_unit_key

JSON_LINES = (
    "application/x-ndjson",
    "application/jsonl",
    "application/json-lines",
    "application/x-jsonlines",
)


class BodyError(Exception):
    """The body as a whole cannot be read: status, code and message for the error body."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


@dataclass(frozen=True)
class Rejection:
    """One refused item: where it was, and why."""

    index: int
    status: int
    code: str
    message: str

    def as_json(self) -> dict[str, Any]:
        return {"index": self.index, "status": self.status, "code": self.code, "message": self.message}


@dataclass
class FeedbackResult:
    """What one call did: items accepted (of which ``updates`` replaced earlier ground truth)."""

    accepted: int = 0
    updates: int = 0
    rejected: list[Rejection] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "accepted": self.accepted,
            "updates": self.updates,
            "rejected": [r.as_json() for r in self.rejected],
        }


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _loads(text: bytes | str) -> Any:
    return json.loads(text, parse_constant=_reject_constant)


def parse_items(body: bytes, content_type: str) -> list[Any]:
    """The items of a body: ``{"items": [...]}``, a JSON array, one item, or JSON lines.

    A JSON-lines line that is not JSON becomes a ``_Broken`` item (refused alone); a JSON body
    that is not JSON refuses the request. More than ``FEEDBACK_MAX_ITEMS`` items: 413.
    """
    media = content_type.split(";", 1)[0].strip().lower()
    if media in JSON_LINES:
        lines = [line for line in body.splitlines() if line.strip()]
        _check_count(len(lines))
        return [_line(line) for line in lines]
    if media != "application/json":
        raise BodyError(
            415,
            "unsupported_media_type",
            f"Content-Type {media or '(none)'!r} is not supported; use application/json or application/x-ndjson",
        )
    try:
        document = _loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise BodyError(400, "invalid_json", f"the body is not JSON: {str(exc)[:200]}") from None
    if isinstance(document, dict) and "items" in document:
        document = document["items"]
        if not isinstance(document, list):
            raise BodyError(400, "invalid_request", "'items' must be a list of feedback items")
    items = document if isinstance(document, list) else [document]
    _check_count(len(items))
    if not items:
        raise BodyError(400, "invalid_request", "no feedback items in the body")
    return items


def _check_count(n: int) -> None:
    limit = settings.FEEDBACK_MAX_ITEMS
    if n > limit:
        raise BodyError(413, "payload_too_large", f"{n} items; at most {limit} per call")


@dataclass(frozen=True)
class _Broken:
    message: str


def _line(line: bytes) -> Any:
    try:
        return _loads(line)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        return _Broken(f"this line is not JSON: {str(exc)[:200]}")


@dataclass(frozen=True)
class _GroundTruth:
    index: int
    request_id: str
    row: int
    label: Any
    value: float | None


@dataclass(frozen=True)
class _Outcome:
    index: int
    unit_key: str
    metric: str
    value: float


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def _item(index: int, raw: Any) -> _GroundTruth | _Outcome | Rejection:
    """Shape checks of one item, before anything is looked up."""
    if isinstance(raw, _Broken):
        return Rejection(index, 400, "invalid_item", raw.message)
    if not isinstance(raw, dict):
        return Rejection(index, 400, "invalid_item", "an item must be a JSON object")
    if "request_id" in raw:
        return _ground_truth(index, raw)
    if "unit_key" in raw:
        return _outcome(index, raw)
    return Rejection(
        index, 400, "invalid_item", "an item needs 'request_id' (ground truth) or 'unit_key' (outcome)"
    )


def _has_nul(value: Any) -> bool:
    """NUL in text: PostgreSQL refuses it in queries and columns, so it is refused here, per item."""
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, list):
        return any(_has_nul(v) for v in value)
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    return False


def _ground_truth(index: int, raw: dict[str, Any]) -> _GroundTruth | Rejection:
    request_id, row = raw.get("request_id"), raw.get("row", 0)
    if not isinstance(request_id, str) or not request_id or len(request_id) > 128 or "\x00" in request_id:
        return Rejection(
            index, 400, "invalid_item", "request_id must be the non-empty string /predict returned"
        )
    if isinstance(row, bool) or not isinstance(row, int) or row < 0:
        return Rejection(index, 400, "invalid_item", "row must be a whole number >= 0 (default 0)")
    has_label, has_value = "label" in raw, "value" in raw
    if has_label == has_value:
        return Rejection(
            index, 400, "invalid_item", "send exactly one of 'label' (a class) or 'value' (a number)"
        )
    if _has_nul(raw.get("label")):
        return Rejection(index, 400, "invalid_label", "a label may not contain the NUL character")
    value = None
    if has_value:
        value = _number(raw["value"])
        if value is None:
            return Rejection(index, 400, "invalid_value", "value must be a finite number")
    return _GroundTruth(index, request_id, row, raw.get("label"), value)


def _outcome(index: int, raw: dict[str, Any]) -> _Outcome | Rejection:
    unit_key, metric = raw.get("unit_key"), raw.get("metric")
    if not isinstance(unit_key, str) or not unit_key or len(unit_key) > 1000:
        return Rejection(
            index, 400, "invalid_item", "unit_key must be the non-empty key /predict was called with"
        )
    if not isinstance(metric, str) or not metric or len(metric) > 100 or "\x00" in metric:
        return Rejection(
            index, 400, "invalid_item", "an outcome needs 'metric', a metric declared on the endpoint"
        )
    value = _number(raw.get("value"))
    if value is None:
        return Rejection(index, 400, "invalid_value", "value must be a finite number")
    return _Outcome(index, unit_key, metric, value)


def feedback_accept(*, endpoint: str, raw_items: list[Any]) -> FeedbackResult:
    """Check, attribute and queue ``raw_items`` for ``endpoint``; the per-item result."""
    result = FeedbackResult()
    parsed = [_item(i, raw) for i, raw in enumerate(raw_items)]
    truths = [p for p in parsed if isinstance(p, _GroundTruth)]
    outcomes = [p for p in parsed if isinstance(p, _Outcome)]
    result.rejected.extend(p for p in parsed if isinstance(p, Rejection))
    now = timezone.now()
    entries = _truth_entries(endpoint, truths, now, result) + _outcome_entries(
        endpoint, outcomes, now, result
    )
    for entry in entries:
        if FEEDBACK_BUFFER.record(entry):
            result.accepted += 1
            result.updates += entry.is_update
            metrics.record_feedback(endpoint, entry.variant, "duplicate" if entry.is_update else "accepted")
        else:
            result.rejected.append(
                Rejection(
                    entry.index, 503, "overloaded", "the feedback queue is full; send this item again later"
                )
            )
            metrics.record_feedback(endpoint, entry.variant, "rejected")
    refused = sum(r.status != 503 for r in result.rejected)
    if refused:  # the variant of a refused item is often unknown: counted under variant ""
        metrics.record_feedback(endpoint, "", "rejected", refused)
    result.rejected.sort(key=lambda r: r.index)
    return result


def _truth_entries(
    endpoint: str, items: list[_GroundTruth], now: Any, result: FeedbackResult
) -> list[FeedbackEntry]:
    if not items:
        return []
    ids = {i.request_id for i in items}
    logged = {
        r[0]: r
        for r in PredictionLog.objects.filter(
            endpoint=endpoint, is_shadow=False, request_id__in=ids
        ).values_list("request_id", "variant", "model_version", "outputs", "created_at")
    }
    seen = set(
        Feedback.objects.filter(
            endpoint=endpoint, kind=Feedback.Kind.GROUND_TRUTH, request_id__in=ids
        ).values_list("request_id", "row")
    )
    entries = []
    for item in items:
        rejection, entry = _truth_entry(endpoint, item, logged.get(item.request_id), seen, now)
        if rejection is not None:
            result.rejected.append(rejection)
        elif entry is not None:
            seen.add((item.request_id, item.row))
            entries.append(entry)
    return entries


def _truth_entry(
    endpoint: str, item: _GroundTruth, logged: tuple | None, seen: set, now: Any
) -> tuple[Rejection | None, FeedbackEntry | None]:
    if logged is None:
        message = (
            f"no prediction with request id {item.request_id[:128]!r} on endpoint {endpoint!r} "
            "(unknown, pruned, or logged less than a second ago: retry later)"
        )
        return Rejection(item.index, 404, "unknown_request_id", message), None
    _, variant, version, outputs, created_at = logged
    outputs = outputs if isinstance(outputs, list) else [outputs]
    if item.row >= len(outputs):
        message = f"row {item.row} is out of range: that prediction had {len(outputs)} row(s)"
        return Rejection(item.index, 400, "row_out_of_range", message), None
    prediction = outputs[item.row]
    problem = (
        quality_metrics.value_problem(prediction, item.value)
        if item.value is not None
        else quality_metrics.label_problem(prediction, item.label)
    )
    if problem:
        code = "invalid_value" if item.value is not None else "invalid_label"
        return Rejection(item.index, 400, code, problem), None
    entry = FeedbackEntry(
        index=item.index,
        endpoint=endpoint,
        kind=Feedback.Kind.GROUND_TRUTH,
        request_id=item.request_id,
        row=item.row,
        label=item.label,
        value=item.value,
        prediction=prediction,
        variant=variant,
        model_version=version,
        predicted_at=created_at,
        received_at=now,
        is_update=(item.request_id, item.row) in seen,
    )
    return None, entry


def _outcome_entries(
    endpoint: str, items: list[_Outcome], now: Any, result: FeedbackResult
) -> list[FeedbackEntry]:
    if not items:
        return []
    declared = dict(
        OutcomeMetric.objects.filter(endpoint__name=endpoint, name__in={i.metric for i in items}).values_list(
            "name", "kind"
        )
    )
    hashes = {hash_unit_key(i.unit_key) for i in items}
    window = timedelta(seconds=settings.FEEDBACK_ATTRIBUTION_WINDOW_SECONDS)
    served = _last_served(endpoint, hashes, now - window)
    entries = []
    for item in items:
        rejection = _outcome_problem(endpoint, item, declared, served)
        if rejection is not None:
            result.rejected.append(rejection)
            continue
        key = hash_unit_key(item.unit_key)
        variant, version, at = served[key]
        entries.append(
            FeedbackEntry(
                index=item.index,
                endpoint=endpoint,
                kind=Feedback.Kind.OUTCOME,
                unit_key_hash=key,
                metric=item.metric,
                value=item.value,
                variant=variant,
                model_version=version,
                predicted_at=at,
                received_at=now,
            )
        )
    return entries


def _last_served(endpoint: str, hashes: Iterable[str], since: Any) -> dict[str, tuple[str, int, Any]]:
    """unit key hash -> (variant, version, when) of the latest answer within the window."""
    rows = (
        PredictionLog.objects.filter(
            endpoint=endpoint, is_shadow=False, unit_key_hash__in=list(hashes), created_at__gte=since
        )
        .order_by("created_at")
        .values_list("unit_key_hash", "variant", "model_version", "created_at")
    )
    return {h: (v, m, at) for h, v, m, at in rows}  # later rows win


def _outcome_problem(
    endpoint: str, item: _Outcome, declared: dict[str, str], served: dict[str, tuple[str, int, Any]]
) -> Rejection | None:
    kind = declared.get(item.metric)
    if kind is None:
        message = (
            f"metric {item.metric[:100]!r} is not declared on endpoint {endpoint!r} (declare it in the admin)"
        )
        return Rejection(item.index, 400, "unknown_metric", message)
    if kind == MetricKind.BINARY and item.value not in (0.0, 1.0):
        return Rejection(item.index, 400, "invalid_value", f"metric {item.metric!r} is 0/1; got {item.value}")
    if hash_unit_key(item.unit_key) not in served:
        hours = settings.FEEDBACK_ATTRIBUTION_WINDOW_SECONDS / 3600
        message = (
            f"no prediction for this unit key on {endpoint!r} within the attribution window ({hours:g} h)"
        )
        return Rejection(item.index, 404, "unknown_unit", message)
    return None
