"""Hostile /predict bodies: refused early with the right 4xx, in work linear in their size, never a 500.

Timings live in ``bench/hostile_input.py``; these tests assert behaviour: the status and code, a
message that stays short whatever the body holds, and (where the old code was quadratic) how many
lookups parsing does, which a quadratic algorithm cannot keep linear.
"""

from __future__ import annotations

import json

import pytest
from prometheus_client import REGISTRY

from routing.serving import dataplane
from routing.serving.errors import PayloadError
from routing.serving.payloads import Limits, parse, parse_document
from routing.serving.validation import Schema, validate
from tests.routing.helpers import breast_rows

COLUMNS, ROWS = breast_rows(1)
SCHEMA = Schema.from_signature([{"name": c, "type": "double"} for c in COLUMNS])
LIMITS = Limits(max_rows=10_000, max_columns=10_000, max_cells=1_000_000)
BODY_OK = {"dataframe_split": {"columns": COLUMNS, "data": ROWS}}
CHAMPION_ONLY = [{"name": "champ", "role": "champion", "version": 1, "weight": 100}]


def _refusal(body: bytes | dict, schema: Schema | None = SCHEMA) -> PayloadError:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    with pytest.raises(PayloadError) as caught:
        validate(parse(raw, "application/json", LIMITS), schema, LIMITS.max_rows)
    return caught.value


class _CountingRow(dict):
    """A row object that counts key lookups (how the old key-union loop was quadratic)."""

    lookups = 0

    def get(self, key, default=None):
        _CountingRow.lookups += 1
        return super().get(key, default)

    def __getitem__(self, key):
        _CountingRow.lookups += 1
        return super().__getitem__(key)


def test_4000_records_with_distinct_keys_are_refused_after_a_linear_number_of_lookups():
    _CountingRow.lookups = 0
    rows = [_CountingRow({f"k{i}": 1}) for i in range(4000)]
    with pytest.raises(PayloadError) as caught:
        parse_document({"dataframe_records": rows}, LIMITS)
    assert (
        caught.value.status == 400
        and "dataframe_records[1] has no value for column 'k0'" in caught.value.message
    )
    assert _CountingRow.lookups <= 2 * len(rows)  # the key union did 4000 x 4000


def test_records_with_the_same_keys_in_another_order_parse_in_the_first_rows_order():
    payload = parse_document({"dataframe_records": [{"a": 1, "b": 2}, {"b": 4, "a": 3}]}, LIMITS)
    assert payload.columns == ["a", "b"] and payload.rows == [[1, 2], [3, 4]]


def test_a_record_with_a_key_the_first_lacks_names_that_key():
    with pytest.raises(PayloadError, match=r"dataframe_records\[0\] has no value for column 'c'"):
        parse_document(
            {"dataframe_records": [{"a": 1, "b": 2}, {"a": 1, "b": 2}, {"a": 1, "b": 2, "c": 3}]},
            LIMITS,
        )


def test_200000_repeated_column_names_are_refused_as_too_many_columns_before_any_is_compared():
    n = 200_000
    error = _refusal({"dataframe_split": {"columns": ["a"] * n, "data": [[1] * n]}})
    assert (error.status, error.code) == (413, "too_many_columns")


def test_repeated_column_names_within_the_limit_are_named_once_in_a_short_message():
    names = [f"c{i % 50}" for i in range(5000)]
    error = _refusal({"dataframe_split": {"columns": names, "data": [[1] * 5000]}})
    assert (error.status, error.code) == (400, "duplicate_column")
    assert len(error.message) < 300 and "(and 40 more)" in error.message
    assert len(error.details["columns"]) <= 20


def test_thousands_of_unknown_columns_give_a_short_message():
    names = [f"x{i}" for i in range(5000)]
    error = _refusal({"dataframe_split": {"columns": names, "data": [[1] * 5000]}})
    assert error.code == "unknown_column" and len(error.message) < 500 and len(error.details["unknown"]) == 20


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"instances": [[0]] * 10_001}, 413, "too_many_rows"),
        ({"dataframe_records": [{"a": 1}] * 10_001}, 413, "too_many_rows"),
        ({"dataframe_split": {"data": [[0]] * 10_001}}, 413, "too_many_rows"),
        ({"inputs": {"a": list(range(10_001))}}, 413, "too_many_rows"),
        ({"instances": [[0] * 10_001]}, 413, "too_many_columns"),
        ({"instances": [0] * 10_001}, 413, "too_many_columns"),
        ({"dataframe_records": [{f"k{i}": 0 for i in range(10_001)}]}, 413, "too_many_columns"),
        ({"instances": [[0] * 2_000] * 600}, 413, "too_many_cells"),
    ],
    ids=[
        "tiny-rows",
        "records",
        "split-no-columns",
        "columnar",
        "wide-row",
        "one-wide-instance",
        "wide-record",
        "cells",
    ],
)
def test_limits_are_checked_while_parsing(body, status, code):
    with pytest.raises(PayloadError) as caught:
        parse(json.dumps(body).encode(), "application/json", LIMITS)
    assert (caught.value.status, caught.value.code) == (status, code)


def test_a_body_with_more_lists_than_the_limits_allow_is_refused_before_it_is_decoded():
    limits = Limits(max_rows=10, max_columns=10, max_cells=50)
    deep = b'{"instances": [' + b",".join([b"[" * 40 + b"1" + b"]" * 40] * 3) + b"]}"
    with pytest.raises(PayloadError) as caught:
        parse(deep, "application/json", limits)
    assert (caught.value.status, caught.value.code) == (
        413,
        "too_many_cells",
    ) and "lists and objects" in caught.value.message
    assert parse(b'{"instances": [[[1, 2]], [[3, 4]]]}', "application/json", limits).rows == [
        [[1, 2]],
        [[3, 4]],
    ]


def test_csv_limits_are_checked_before_values_are_converted():
    body = ("a\n" + "1\n" * 10_001).encode()
    with pytest.raises(PayloadError) as caught:
        parse(body, "text/csv", LIMITS)
    assert caught.value.code == "too_many_rows"


@pytest.mark.parametrize(
    ("value", "kind", "code"),
    [
        (int("9" * 400), "double", "out_of_range"),
        (-int("9" * 400), "double", "out_of_range"),
        (2**63, "long", "out_of_range"),
        (1e300, "long", "out_of_range"),
        (1.5, "long", "wrong_type"),
        ([[[[1]]]], "double", "wrong_type"),
        ("x" * 100_000, "string", None),
    ],
    ids=[
        "400-digits",
        "negative-400-digits",
        "2^63-long",
        "1e300-long",
        "fraction-long",
        "nested",
        "long-string",
    ],
)
def test_numbers_beyond_their_column_type_are_a_400_naming_the_column(value, kind, code):
    schema = Schema.from_signature([{"name": "a", "type": kind}, {"name": "b", "type": "double"}])
    body = json.dumps(
        {
            "dataframe_split": {
                "columns": ["a", "b"],
                "data": [["s" if kind == "string" else 1.0, 1.0], [value, 2.0]],
            }
        }
    ).encode()
    if code is None:
        validate(parse(body, "application/json", LIMITS), schema)
        return
    with pytest.raises(PayloadError) as caught:
        validate(parse(body, "application/json", LIMITS), schema)
    assert (caught.value.status, caught.value.code) == (400, code)
    assert "'a'" in caught.value.message and "row 1" in caught.value.message
    assert len(caught.value.message) < 200


def test_a_400_digit_integer_in_an_all_numeric_batch_is_a_400_not_an_overflow():
    row = list(ROWS[0])
    row[5] = int("9" * 400)
    error = _refusal({"dataframe_split": {"columns": COLUMNS, "data": [row]}})
    assert error.code == "out_of_range" and COLUMNS[5] in error.message


def test_a_lone_surrogate_in_the_unit_key_is_a_400():
    with pytest.raises(PayloadError, match="lone surrogate"):
        parse(b'{"instances": [[1]], "unit_key": "\\ud800"}', "application/json", LIMITS)


def test_a_json_body_with_a_byte_order_mark_parses():
    body = b"\xef\xbb\xbf" + json.dumps({"dataframe_split": {"columns": COLUMNS, "data": ROWS}}).encode()
    assert validate(parse(body, "application/json", LIMITS), SCHEMA).rows == ROWS


# --- through the view -------------------------------------------------------------------------


def _server_errors(endpoint: str) -> float:
    labels = {"endpoint": endpoint, "variant": "", "model_version": "", "outcome": "server_error"}
    return REGISTRY.get_sample_value("controlplane_predictions_total", labels) or 0.0


@pytest.mark.django_db
def test_hostile_bodies_through_predict_are_4xx_with_the_json_error_body(serving):
    serving.endpoint("hostile", CHAMPION_ONLY)
    token = serving.token()
    serving.refresh()
    huge = list(ROWS[0])
    huge[0] = int("9" * 400)
    bodies = {
        "400-digits": ({"dataframe_split": {"columns": COLUMNS, "data": [huge]}}, 400, "out_of_range"),
        "surrogate-key": (
            json.dumps({**BODY_OK, "unit_key": "@"}).replace('"@"', '"\\udc00"'),
            400,
            "invalid_payload",
        ),
        "distinct-keys": ({"dataframe_records": [{f"k{i}": 1} for i in range(4000)]}, 400, "invalid_payload"),
        "many-columns": (
            {"dataframe_split": {"columns": ["a"] * 20_000, "data": [[1] * 20_000]}},
            413,
            "too_many_columns",
        ),
    }
    for name, (body, status, code) in bodies.items():
        answer = serving.post("/predict/hostile", body, token)
        assert answer.status_code == status, (name, answer.content[:300])
        assert answer["Content-Type"] == "application/json"
        assert answer.json()["error"]["code"] == code, name


@pytest.mark.django_db
def test_an_unexpected_failure_answers_the_json_error_body_and_counts_as_server_error(serving, monkeypatch):
    serving.endpoint("bug", CHAMPION_ONLY)
    token = serving.token()
    serving.refresh()

    def broken(*args, **kwargs):
        raise RuntimeError("a bug in the data plane")

    monkeypatch.setattr(dataplane, "predict", broken)
    before = _server_errors("bug")
    answer = serving.post("/predict/bug", {"dataframe_split": {"columns": COLUMNS, "data": ROWS}}, token)
    assert answer.status_code == 500 and answer["Content-Type"] == "application/json"
    error = answer.json()["error"]
    assert error["code"] == "internal_error" and error["details"]["request_id"] == answer["X-Request-ID"]
    assert "a bug in the data plane" not in answer.content.decode()  # no internals to the client
    assert _server_errors("bug") - before == 1
