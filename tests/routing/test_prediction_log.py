"""The prediction log: what the writer stores, what a failed write costs, and retention."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from django.core.management import call_command
from django.utils import timezone

from routing import prediction_log
from routing.models_serving import PredictionLog
from routing.prediction_log import LogEntry, PredictionLogBuffer, input_records

pytestmark = pytest.mark.django_db


def _row(days_old: float, request_id: str) -> PredictionLog:
    return PredictionLog.objects.create(
        created_at=timezone.now() - dt.timedelta(days=days_old),
        request_id=request_id,
        endpoint="e",
        variant="v",
        model_name="m",
        model_version=1,
        inputs=[{"a": 1.0}],
        outputs=[0],
        latency_ms=0.5,
    )


def test_prune_predictions_deletes_only_rows_older_than_the_cutoff(capsys):
    _row(40, "old")
    _row(31, "older-than-30")
    _row(29, "recent")
    _row(0, "today")
    call_command("prune_predictions", "--older-than-days", "30")
    assert "deleted 2" in capsys.readouterr().out
    assert set(PredictionLog.objects.values_list("request_id", flat=True)) == {"recent", "today"}


def _entry(request_id: str, model_version: int = 3, **extra) -> LogEntry:
    return LogEntry(
        request_id=request_id,
        endpoint="ep",
        variant="champ",
        model_name="m",
        model_version=model_version,
        columns=["a", "b"],
        rows=[[1.5, 2.0], [3.0, -4.25]],
        outputs=[1, 0],
        latency_ms=0.25,
        **extra,
    )


def test_the_writer_stores_every_field_as_the_orm_reads_it(settings):
    settings.PREDICTION_LOG_IN_BACKGROUND = False
    buffer = PredictionLogBuffer()
    when = timezone.now() - dt.timedelta(minutes=5)
    buffer.record(_entry("r-1", unit_key="user-7", token_name="svc", fallback_from="chall", created_at=when))
    buffer.record(_entry("r-2", is_shadow=True, agreement=0.5))
    assert buffer.flush() == 2
    first, second = PredictionLog.objects.order_by("request_id")
    assert first.inputs == {"dataframe_split": {"columns": ["a", "b"], "data": [[1.5, 2.0], [3.0, -4.25]]}}
    assert input_records(first.inputs) == [{"a": 1.5, "b": 2.0}, {"a": 3.0, "b": -4.25}]
    assert first.outputs == [1, 0]
    assert first.created_at == when and first.model_version == 3 and first.latency_ms == 0.25
    assert len(first.unit_key_hash) == 64 and "user-7" not in first.unit_key_hash
    assert (first.token_name, first.fallback_from, first.is_shadow, first.agreement) == (
        "svc",
        "chall",
        False,
        None,
    )
    assert second.is_shadow and second.agreement == 0.5 and second.unit_key_hash == ""
    assert (
        PredictionLog.objects.filter(inputs__dataframe_split__data__0__0=1.5).count() == 2
    )  # real JSON, queryable


def test_a_row_the_database_refuses_costs_that_row_only_and_is_counted(settings):
    settings.PREDICTION_LOG_IN_BACKGROUND = False
    buffer = PredictionLogBuffer()
    buffer.record(_entry("ok-1"))
    buffer.record(_entry("bad", model_version=-1))  # PositiveIntegerField: a CHECK on both backends
    buffer.record(_entry("ok-2"))
    assert buffer.flush() == 2
    assert sorted(PredictionLog.objects.values_list("request_id", flat=True)) == ["ok-1", "ok-2"]
    assert buffer.dropped == 1


def test_inputs_read_back_as_records_from_every_stored_form_and_tensors_give_none():
    records = [{"a": 1, "b": 2}]
    for stored in (
        {"dataframe_split": {"columns": ["a", "b"], "data": [[1, 2]]}},
        {"dataframe_records": records, "params": {"k": 1}},
        {"instances": records},
        {"inputs": {"a": [1], "b": [2]}},
        [{"a": 1, "b": 2}, [3, 4]],  # the first form: one object per row
    ):
        assert input_records(stored) == records, stored
    assert input_records({"instances": [[1, 2]]}) == [] and input_records(None) == []
    assert input_records({"dataframe_split": "not rows"}) == []


def test_a_stored_request_replays_as_a_valid_scoring_request():
    from routing.payloads import parse

    buffer_entry = _entry("replay")
    stored = json.loads(prediction_log._inputs_json(buffer_entry.columns, buffer_entry.rows))
    payload = parse(json.dumps(stored).encode(), "application/json")
    assert list(payload.columns) == ["a", "b"] and payload.rows == buffer_entry.rows
