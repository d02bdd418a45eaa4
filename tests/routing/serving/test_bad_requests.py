"""Bad input is a 4xx that says what is wrong: a table of bad requests through /predict."""

from __future__ import annotations

import json

import pytest

from tests.routing.helpers import breast_rows

pytestmark = pytest.mark.django_db


COLUMNS, ROWS = breast_rows(2)
GOOD_ROW = ROWS[0]


def _split(columns=COLUMNS, data=None):
    return {"dataframe_split": {"columns": columns, "data": data if data is not None else [GOOD_ROW]}}


def _with(col: int, value):
    row = list(GOOD_ROW)
    row[col] = value
    return _split(data=[row])


# (id, body, content type, status, error code, words the message must contain)
BAD = [
    ("not-json", "{not json", "application/json", 400, "invalid_json", ["JSON"]),
    ("blank-body", " ", "application/json", 400, "invalid_json", ["JSON"]),
    ("json-array", "[1, 2]", "application/json", 400, "invalid_payload", ["object"]),
    ("no-format", {"params": {}}, "application/json", 400, "invalid_payload", ["exactly one"]),
    (
        "two-formats",
        {**_split(), "instances": [GOOD_ROW]},
        "application/json",
        400,
        "invalid_payload",
        ["exactly one"],
    ),
    ("unknown-field", {**_split(), "foo": 1}, "application/json", 400, "invalid_payload", ["foo"]),
    (
        "split-not-object",
        {"dataframe_split": [1]},
        "application/json",
        400,
        "invalid_payload",
        ["dataframe_split"],
    ),
    (
        "split-data-not-list",
        {"dataframe_split": {"columns": COLUMNS, "data": 3}},
        "application/json",
        400,
        "invalid_payload",
        ["data"],
    ),
    ("split-row-not-list", _split(data=[5]), "application/json", 400, "invalid_payload", ["data[0]"]),
    (
        "split-row-too-short",
        _split(data=[GOOD_ROW[:-1]]),
        "application/json",
        400,
        "invalid_payload",
        ["29 values", "30 columns"],
    ),
    (
        "columns-not-strings",
        _split(columns=list(range(30))),
        "application/json",
        400,
        "invalid_payload",
        ["columns"],
    ),
    ("empty-batch", _split(data=[]), "application/json", 400, "empty_batch", ["no rows"]),
    ("empty-records", {"dataframe_records": []}, "application/json", 400, "empty_batch", ["no rows"]),
    (
        "missing-column",
        _split(columns=COLUMNS[1:], data=[GOOD_ROW[1:]]),
        "application/json",
        400,
        "missing_column",
        ["mean radius"],
    ),
    (
        "unknown-column",
        _split(columns=[*COLUMNS, "shoe size"], data=[[*GOOD_ROW, 42]]),
        "application/json",
        400,
        "unknown_column",
        ["shoe size"],
    ),
    (
        "duplicate-column",
        _split(columns=[*COLUMNS[:-1], COLUMNS[0]], data=[GOOD_ROW]),
        "application/json",
        400,
        "duplicate_column",
        ["mean radius"],
    ),
    ("string-value", _with(3, "big"), "application/json", 400, "wrong_type", ["mean area", "double", "str"]),
    ("numeric-string", _with(0, "12.5"), "application/json", 400, "wrong_type", ["mean radius"]),
    ("bool-value", _with(1, True), "application/json", 400, "wrong_type", ["mean texture", "bool"]),
    ("null-value", _with(2, None), "application/json", 400, "missing_value", ["mean perimeter", "null"]),
    ("nested-value", _with(4, [1.0]), "application/json", 400, "wrong_type", ["mean smoothness"]),
    (
        "nan-literal",
        json.dumps(_split()).replace(str(GOOD_ROW[0]), "NaN", 1),
        "application/json",
        400,
        "non_finite",
        ["NaN"],
    ),
    (
        "infinity-literal",
        json.dumps(_split()).replace(str(GOOD_ROW[0]), "Infinity", 1),
        "application/json",
        400,
        "non_finite",
        ["Infinity"],
    ),
    (
        "huge-number-overflows",
        json.dumps(_split()).replace(str(GOOD_ROW[0]), "1e999", 1),
        "application/json",
        400,
        "non_finite",
        ["mean radius"],
    ),
    (
        "records-row-not-object",
        {"dataframe_records": [1, 2]},
        "application/json",
        400,
        "invalid_payload",
        ["dataframe_records[0]"],
    ),
    (
        "records-missing-key",
        {"dataframe_records": [dict(zip(COLUMNS, GOOD_ROW, strict=True)), {"mean radius": 1.0}]},
        "application/json",
        400,
        "invalid_payload",
        ["dataframe_records[1]"],
    ),
    (
        "instances-wrong-width",
        {"instances": [GOOD_ROW[:10]]},
        "application/json",
        400,
        "wrong_width",
        ["10 values", "30 columns"],
    ),
    (
        "inputs-ragged-columns",
        {"inputs": {"mean radius": [1.0, 2.0], "mean texture": [1.0]}},
        "application/json",
        400,
        "invalid_payload",
        ["different lengths"],
    ),
    (
        "params-not-object",
        {**_split(), "params": [1]},
        "application/json",
        400,
        "invalid_payload",
        ["params"],
    ),
    (
        "unit-key-object",
        {**_split(), "unit_key": {"a": 1}},
        "application/json",
        400,
        "invalid_payload",
        ["unit_key"],
    ),
    ("csv-ragged", ",".join(COLUMNS) + "\n1,2,3\n", "text/csv", 400, "invalid_csv", ["line 2"]),
    (
        "csv-text-value",
        ",".join(COLUMNS) + "\n" + ",".join(["x"] * 30) + "\n",
        "text/csv",
        400,
        "wrong_type",
        ["mean radius"],
    ),
    ("csv-empty", "\n", "text/csv", 400, "empty_batch", ["empty"]),
    ("not-utf8", b"\xff\xfe{}", "application/json", 400, "invalid_json", ["JSON"]),
    ("xml", "<rows/>", "application/xml", 415, "unsupported_media_type", ["application/xml"]),
    ("form", "a=1", "application/x-www-form-urlencoded", 415, "unsupported_media_type", ["application/json"]),
]


@pytest.mark.parametrize(
    ("body", "content_type", "status", "code", "words"), [b[1:] for b in BAD], ids=[b[0] for b in BAD]
)
def test_bad_input_is_a_4xx_that_names_the_problem(serving, body, content_type, status, code, words):
    _ready(serving)
    response = serving.post("/predict/val", body, serving.raw_token, content_type=content_type)
    assert response.status_code == status, response.content
    error = response.json()["error"]
    assert error["code"] == code, error
    for word in words:
        assert word in error["message"], (word, error["message"])


def _ready(serving):
    if not getattr(serving, "raw_token", None):
        serving.endpoint("val", [{"name": "champ", "role": "champion", "version": 1, "weight": 1}])
        serving.raw_token = serving.token(can_override=False)
        serving.refresh()


def test_an_oversized_body_is_413(serving, settings):
    _ready(serving)
    settings.PREDICT_MAX_BODY_BYTES = 2048
    response = serving.post("/predict/val", _split(data=[GOOD_ROW] * 20), serving.raw_token)
    assert response.status_code == 413 and response.json()["error"]["code"] == "payload_too_large"


def test_too_many_rows_is_413(serving, settings):
    _ready(serving)
    settings.PREDICT_MAX_ROWS = 5
    response = serving.post("/predict/val", _split(data=[GOOD_ROW] * 6), serving.raw_token)
    assert response.status_code == 413 and "at most 5" in response.json()["error"]["message"]


def test_unknown_endpoint_is_404_and_get_is_405(serving):
    _ready(serving)
    response = serving.post("/predict/nope", _split(), serving.raw_token)
    assert response.status_code == 404 and "nope" in response.json()["error"]["message"]
    response = serving.client.get("/predict/val", HTTP_AUTHORIZATION=f"Bearer {serving.raw_token}")
    assert response.status_code == 405


def test_an_integer_value_in_a_double_column_is_accepted(serving):
    _ready(serving)
    response = serving.post("/predict/val", _with(0, 14), serving.raw_token)
    assert response.status_code == 200, response.content
    assert assert_valid_count() >= 36


def assert_valid_count() -> int:
    return len(BAD)
