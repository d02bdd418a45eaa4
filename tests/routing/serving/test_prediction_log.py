"""The prediction log: what the writer stores, what a failed write costs, and retention."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from django.core.management import call_command
from django.utils import timezone

from routing.models import PredictionLog
from routing.serving.prediction_log import LogEntry, PredictionLogBuffer, input_records

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


def test_prune_deletes_in_batches_so_each_transaction_stays_short():
    from routing.serving.prediction_log import prune

    for i in range(7):
        _row(40, f"old-{i}")
    _row(1, "recent")
    assert prune(30, batch_size=3) == 7
    assert list(PredictionLog.objects.values_list("request_id", flat=True)) == ["recent"]


def _entry(request_id: str, model_version: int = 3, **extra) -> LogEntry:
    fields = {
        "endpoint": "ep",
        "variant": "champ",
        "model_name": "m",
        "columns": ["a", "b"],
        "rows": [[1.5, 2.0], [3.0, -4.25]],
        "outputs": [1, 0],
        "latency_ms": 0.25,
    }
    return LogEntry(request_id=request_id, model_version=model_version, **{**fields, **extra})


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


def test_a_stored_request_replays_as_a_valid_scoring_request(settings):
    from routing.serving.payloads import parse

    settings.PREDICTION_LOG_IN_BACKGROUND = False
    buffer = PredictionLogBuffer()
    buffer_entry = _entry("replay")  # rows without a body to keep: the writer encodes them
    assert buffer.record(buffer_entry) and buffer.flush() == 1
    stored = PredictionLog.objects.get(request_id="replay").inputs
    payload = parse(json.dumps(stored).encode(), "application/json")
    assert list(payload.columns) == ["a", "b"] and payload.rows == buffer_entry.rows


# --- nothing that can be kept is lost (issue 10, item 7) -------------------------------------


def _counter(name: str, endpoint: str = "ep") -> float:
    from prometheus_client import REGISTRY

    return REGISTRY.get_sample_value(name, {"endpoint": endpoint}) or 0.0


def test_bom_nul_and_lone_surrogates_are_stored_safely_in_one_batch(settings, caplog):
    settings.PREDICTION_LOG_IN_BACKGROUND = False
    buffer = PredictionLogBuffer()
    split = {"columns": ["a"], "data": [[1.0]]}
    bodies = {
        "bom": "\ufeff" + json.dumps({"dataframe_split": split}),
        "nul": json.dumps({"dataframe_split": {**split, "index": ["a\u0000b"]}}),
        "surrogate": json.dumps({"dataframe_split": {**split, "index": ["\ud800"]}}),
        "escaped-backslash": json.dumps({"dataframe_split": {**split, "index": ["\\u0000 is text"]}}),
    }
    for name, body in bodies.items():
        assert buffer.record(_entry(name, request_json=body, columns=[], rows=[]))
    buffer.record(_entry("nul-output", outputs=["x\u0000"]))
    with caplog.at_level("WARNING", logger="routing.serving.prediction_log"):
        assert buffer.flush() == 5
    assert "one by one" not in caplog.text and buffer.dropped == 0
    stored = {r.request_id: r for r in PredictionLog.objects.all()}
    assert stored["bom"].inputs == {"dataframe_split": split}
    assert stored["nul"].inputs["dataframe_split"]["index"] == ["a\ufffdb"]
    assert stored["surrogate"].inputs["dataframe_split"]["index"] == ["\ufffd"]
    assert stored["escaped-backslash"].inputs["dataframe_split"]["index"] == ["\\u0000 is text"]
    assert stored["nul-output"].outputs == ["x\ufffd"]


def test_the_queue_is_bounded_in_bytes_and_counts_what_it_drops(settings):
    settings.PREDICTION_LOG_IN_BACKGROUND = False
    settings.PREDICTION_LOG_BUFFER_BYTES = 1024 * 1024
    buffer = PredictionLogBuffer()
    big = json.dumps({"instances": [[0.5] * 1000] * 50})  # ~250 KB body each
    before = _counter("controlplane_prediction_log_dropped_total", "bytes-ep")
    accepted = [buffer.record(_entry(f"b{i}", request_json=big, endpoint="bytes-ep")) for i in range(10)]
    assert accepted.count(True) == 4 and accepted[4:] == [False] * 6
    assert buffer.queued_bytes <= settings.PREDICTION_LOG_BUFFER_BYTES
    assert _counter("controlplane_prediction_log_dropped_total", "bytes-ep") - before == 6
    assert buffer.flush() == 4 and buffer.queued_bytes == 0
    assert buffer.record(_entry("after", request_json=big, endpoint="bytes-ep"))  # room again


class _WriteLock:
    """Another connection holding the database's write lock on the log table, as a long write would."""

    def __init__(self, connection) -> None:
        self.settings = connection.settings_dict
        self.vendor = connection.vendor
        self.raw = None

    def __enter__(self) -> _WriteLock:
        if self.vendor == "sqlite":
            import sqlite3

            self.raw = sqlite3.connect(self.settings["NAME"], isolation_level=None)
            self.raw.execute("BEGIN EXCLUSIVE")
        else:
            import psycopg

            self.raw = psycopg.connect(
                host=self.settings["HOST"] or "127.0.0.1",
                port=self.settings["PORT"] or 5432,
                user=self.settings["USER"],
                dbname=self.settings["NAME"],
            )
            self.raw.execute("LOCK TABLE routing_predictionlog IN ACCESS EXCLUSIVE MODE")
        return self

    def __exit__(self, *exc) -> None:
        self.raw.rollback() if self.vendor != "sqlite" else self.raw.execute("ROLLBACK")
        self.raw.close()


@pytest.mark.django_db(transaction=True)
def test_rows_written_while_the_database_is_locked_arrive_once_it_is_back(settings, monkeypatch):
    """The writer thread meets a lock for ~3 s (its own wait: 0.2 s), retries with backoff, loses nothing."""
    import time

    from django.db import connection, connections

    options = dict(connections.settings["default"].get("OPTIONS", {}))
    if connection.vendor == "sqlite":
        options["timeout"] = 0.2
    else:
        options["options"] = "-c lock_timeout=200"
    monkeypatch.setitem(connections.settings["default"], "OPTIONS", options)
    settings.PREDICTION_LOG_IN_BACKGROUND = True
    settings.PREDICTION_LOG_FLUSH_SECONDS = 0.05
    settings.PREDICTION_LOG_RETRY_SECONDS = 0.1
    settings.PREDICTION_LOG_RETRY_MAX_SECONDS = 0.8
    buffer = PredictionLogBuffer()
    retried_before = _counter("controlplane_prediction_log_retried_total", "locked-ep")
    try:
        with _WriteLock(connection):
            for i in range(300):
                assert buffer.record(_entry(f"locked-{i}", endpoint="locked-ep"))
                if i % 100 == 0:
                    time.sleep(1)  # the writer tries while the lock is held
        deadline = time.monotonic() + 30
        while (
            PredictionLog.objects.filter(endpoint="locked-ep").count() < 300 and time.monotonic() < deadline
        ):
            time.sleep(0.1)
    finally:
        buffer.stop()
    ids = set(PredictionLog.objects.filter(endpoint="locked-ep").values_list("request_id", flat=True))
    assert ids == {f"locked-{i}" for i in range(300)}
    assert buffer.dropped == 0 and buffer.queued() == []
    assert _counter("controlplane_prediction_log_retried_total", "locked-ep") - retried_before > 0
