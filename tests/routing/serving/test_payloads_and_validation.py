"""Every MLflow scoring format parses to the same columns and rows (pure, no server)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from routing.serving.payloads import PayloadError, parse
from routing.serving.validation import Schema, validate

COLUMNS = ["a", "b", "c"]
ROWS = [[1.0, 2.0, 3.0], [4.0, 5.5, 6.0]]
SCHEMA = Schema.from_signature([{"name": c, "type": "double", "required": True} for c in COLUMNS])


def _json(doc) -> bytes:
    return json.dumps(doc).encode()


RECORDS = [dict(zip(COLUMNS, r, strict=True)) for r in ROWS]
BODIES = {
    "dataframe_split": (_json({"dataframe_split": {"columns": COLUMNS, "data": ROWS}}), "application/json"),
    "dataframe_records": (_json({"dataframe_records": RECORDS}), "application/json"),
    "instances_records": (_json({"instances": RECORDS}), "application/json"),
    "instances_tensor": (_json({"instances": ROWS}), "application/json"),
    "inputs_columnar": (
        _json({"inputs": {c: [r[i] for r in ROWS] for i, c in enumerate(COLUMNS)}}),
        "application/json",
    ),
    "inputs_tensor": (_json({"inputs": ROWS}), "application/json"),
    "shuffled_columns": (
        _json({"dataframe_split": {"columns": ["c", "a", "b"], "data": [[r[2], r[0], r[1]] for r in ROWS]}}),
        "application/json; charset=utf-8",
    ),
    "csv": (b"a,b,c\n1,2,3\n4,5.5,6\n", "text/csv"),
    "csv_crlf": (b"a,b,c\r\n1.0,2.0,3.0\r\n4.0,5.5,6.0\r\n", "text/csv; charset=utf-8"),
}


@pytest.mark.parametrize("name", list(BODIES))
def test_every_format_gives_the_same_validated_array(name):
    body, content_type = BODIES[name]
    batch = validate(parse(body, content_type), SCHEMA)
    assert batch.columns == COLUMNS
    assert batch.array is not None
    np.testing.assert_array_equal(batch.array, np.array(ROWS))


def test_params_and_unit_key_are_read_from_the_body():
    payload = parse(
        _json({"dataframe_split": {"columns": COLUMNS, "data": ROWS}, "params": {"k": 1}, "unit_key": "u-1"}),
        "application/json",
    )
    assert payload.params == {"k": 1} and payload.unit_key == "u-1" and payload.format == "dataframe_split"


def test_a_single_instance_is_one_row():
    payload = parse(_json({"instances": [1.0, 2.0, 3.0]}), "application/json")
    assert payload.rows == [[1.0, 2.0, 3.0]]


def test_integer_columns_refuse_fractions_and_accept_whole_floats():
    schema = Schema.from_signature([{"name": "n", "type": "long", "required": True}])
    ok = validate(
        parse(_json({"dataframe_split": {"columns": ["n"], "data": [[3], [4.0]]}}), "application/json"),
        schema,
    )
    assert ok.array.tolist() == [[3.0], [4.0]]
    with pytest.raises(PayloadError, match="'n' expects long"):
        validate(
            parse(_json({"dataframe_split": {"columns": ["n"], "data": [[3.5]]}}), "application/json"), schema
        )


def test_string_columns_go_through_without_an_array():
    schema = Schema.from_signature(
        [{"name": "s", "type": "string", "required": True}, {"name": "x", "type": "double", "required": True}]
    )
    batch = validate(parse(_json({"dataframe_records": [{"s": "a", "x": 1}]}), "application/json"), schema)
    assert batch.array is None and batch.rows == [["a", 1]]
    with pytest.raises(PayloadError, match="'s' expects string"):
        validate(parse(_json({"dataframe_records": [{"s": 1, "x": 1}]}), "application/json"), schema)


def test_an_optional_column_may_be_missing():
    schema = Schema.from_signature(
        [
            {"name": "x", "type": "double", "required": True},
            {"name": "y", "type": "double", "required": False},
        ]
    )
    batch = validate(parse(_json({"dataframe_records": [{"x": 1.0}]}), "application/json"), schema)
    assert batch.rows == [[1.0, None]]


def test_deeply_nested_json_is_a_400_not_a_crash():
    body = b"[" * 100_000 + b"]" * 100_000
    with pytest.raises(PayloadError) as info:
        parse(body, "application/json")
    assert info.value.status == 400
