"""Property-based fuzz (hypothesis): no body gives anything but a payload, a batch or a 4xx.

Pure functions first (parse and validate, thousands of examples in seconds), then the /predict
view through Django's test client with a real model behind it: every answer is JSON, and a 5xx
would fail the test with the body that caused it (hypothesis shrinks it to the smallest).
"""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from routing.serving import payloads
from routing.serving.errors import PayloadError
from routing.serving.payloads import FORMATS, Limits, parse
from routing.serving.validation import Schema, validate
from tests.routing.helpers import breast_rows

pytestmark = pytest.mark.single_pass("postgresql")

COLUMNS, ROWS = breast_rows(1)
LIMITS = Limits(max_rows=50, max_columns=40, max_cells=500)
SCHEMAS = [
    Schema.from_signature([{"name": c, "type": "double"} for c in COLUMNS]),
    Schema.from_signature(
        [
            {"name": "a", "type": "long"},
            {"name": "b", "type": "double"},
            {"name": "c", "type": "string", "required": False},
            {"name": "d", "type": "boolean"},
            {"name": "e", "type": "integer"},
        ]
    ),
    None,
]
EXAMPLES = 400

# Text that breaks naive code: NUL, lone surrogates, a byte-order mark, non-BMP characters.
nasty_text = st.text(
    alphabet=st.one_of(
        st.characters(), st.sampled_from(["\x00", "\ud800", "\udfff", "\ufeff", "😀", '"', "\\"])
    ),
    max_size=12,
)
numbers = st.one_of(
    st.integers(),
    st.integers(min_value=-(10**400), max_value=10**400),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([2**63, -(2**63) - 1, 10**308 * 10, 1e308, -0.0, 2**53 + 1]),
)
scalars = st.one_of(st.none(), st.booleans(), numbers, nasty_text)
json_values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=6),
        st.dictionaries(nasty_text | st.sampled_from(["a", "b", "c"]), children, max_size=6),
    ),
    max_leaves=40,
)
column_names = st.one_of(st.sampled_from(["a", "b", "c", "d", "e", *COLUMNS[:3]]), nasty_text)
rows = st.lists(st.lists(scalars, max_size=8), max_size=8)


@st.composite
def scoring_documents(draw: st.DrawFn) -> dict:
    """Near-valid requests: the right top-level shape with hostile columns, rows and values."""
    fmt = draw(st.sampled_from(FORMATS))
    if fmt == "dataframe_split":
        body = {"data": draw(rows | json_values)}
        if draw(st.booleans()):
            body["columns"] = draw(st.lists(column_names, max_size=8) | json_values)
        if draw(st.booleans()):
            body["index"] = draw(json_values)
        value = body
    elif fmt == "dataframe_records":
        value = draw(st.lists(st.dictionaries(column_names, scalars, max_size=6), max_size=6) | json_values)
    else:
        value = draw(
            rows
            | st.dictionaries(column_names, st.lists(scalars, max_size=6) | scalars, max_size=6)
            | st.lists(scalars, max_size=8)
            | json_values
        )
    doc = {fmt: value}
    if draw(st.booleans()):
        doc["unit_key"] = draw(nasty_text | numbers | json_values)
    if draw(st.booleans()):
        doc["params"] = draw(json_values)
    if draw(st.integers(0, 9)) == 0:
        doc[draw(nasty_text)] = draw(json_values)
    return doc


def _encode(doc: object) -> bytes:
    try:
        text = json.dumps(doc)
    except ValueError:  # an integer beyond Python's own str() limit: send what fits
        text = json.dumps(str(doc)[:100])
    return text.encode("utf-8", "surrogatepass")  # lone surrogates as a client may send them


def _parse_and_validate(body: bytes, content_type: str = "application/json") -> None:
    try:
        payload = parse(body, content_type, LIMITS)
        for schema in SCHEMAS:
            try:
                validate(payload, schema, LIMITS.max_rows)
            except PayloadError as exc:
                assert 400 <= exc.status < 500 and exc.code and exc.message
                assert len(exc.message) < 2000, exc.message[:200]
    except PayloadError as exc:
        assert 400 <= exc.status < 500 and exc.code and exc.message
        assert len(exc.message) < 2000, exc.message[:200]


@settings(max_examples=EXAMPLES, deadline=None)
@given(scoring_documents())
@example({"dataframe_split": {"columns": COLUMNS, "data": [[int("9" * 400)] * 30]}})
@example({"dataframe_records": [{"a": 1}, {"b": 2}]})
def test_near_valid_documents_parse_and_validate_or_are_a_4xx(doc):
    _parse_and_validate(_encode(doc))


@settings(max_examples=EXAMPLES, deadline=None)
@given(json_values)
def test_any_json_value_is_a_payload_or_a_4xx(doc):
    _parse_and_validate(_encode(doc))


@settings(max_examples=EXAMPLES, deadline=None)
@given(st.binary(max_size=300), st.sampled_from(["application/json", "text/csv", "text/plain", ""]))
@example(b"\xef\xbb\xbf{}", "application/json")
@example(b"[" * 100_000, "application/json")
@example(b"a,b\n\x00,\xff\n", "text/csv")
def test_any_bytes_under_any_content_type_are_a_payload_or_a_4xx(body, content_type):
    _parse_and_validate(body, content_type)


@settings(max_examples=EXAMPLES, deadline=None)
@given(
    st.lists(st.lists(st.text(max_size=6) | numbers.map(str), min_size=1, max_size=6), min_size=1, max_size=8)
)
def test_any_csv_table_is_a_payload_or_a_4xx(table):
    text = "\n".join(",".join(json.dumps(cell) if "," in cell else cell for cell in line) for line in table)
    _parse_and_validate(text.encode("utf-8", "surrogatepass"), "text/csv")


# --- through the view -------------------------------------------------------------------------

VIEW_EXAMPLES = 150


@pytest.mark.django_db
@settings(
    max_examples=VIEW_EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    doc=scoring_documents(),
    headers=st.fixed_dictionaries(
        {},
        optional={
            "X_UNIT_KEY": st.text(alphabet=st.characters(max_codepoint=255), max_size=20),
            "X_VARIANT": st.sampled_from(["champ", "nope", ""]),
        },
    ),
)
@example(doc={"dataframe_split": {"columns": COLUMNS, "data": ROWS}}, headers={})
@example(doc={"dataframe_split": {"columns": COLUMNS, "data": ROWS}, "unit_key": "\ud800"}, headers={})
def test_predict_answers_every_fuzzed_body_with_json_and_never_a_5xx(fuzz_serving, doc, headers):
    serving, token = fuzz_serving
    answer = serving.post("/predict/fuzz", _encode(doc), token, **headers)
    assert answer.status_code < 500, (answer.status_code, answer.content[:500])
    assert answer["Content-Type"] == "application/json"
    body = answer.json()
    assert ("predictions" in body) if answer.status_code == 200 else body["error"]["code"]


@pytest.fixture
def fuzz_serving(serving, settings):
    settings.PREDICT_MAX_ROWS = LIMITS.max_rows
    settings.PREDICT_MAX_COLUMNS = LIMITS.max_columns
    settings.PREDICT_MAX_CELLS = LIMITS.max_cells
    serving.endpoint("fuzz", [{"name": "champ", "role": "champion", "version": 1, "weight": 100}])
    token = serving.token(rate_limit_per_second=0, can_override=True)
    serving.refresh()
    return serving, token


# --- the JSON decoder ----------------------------------------------------------------------------


def _decoded(decode, body: bytes):
    """What a decoder makes of a body: the document, or the kind of refusal."""
    try:
        return "doc", decode(body)
    except PayloadError as exc:
        return "refused", exc.code
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        return "refused", type(exc).__name__


def _typed(value):
    """A document with every number tagged by its type: 1 and 1.0 are equal but not the same."""
    if isinstance(value, dict):
        return {k: _typed(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_typed(v) for v in value]
    return type(value).__name__, value


def _refuse_constant(name: str):
    raise PayloadError(400, "non_finite", f"non-finite number {name} is not allowed")


def _standard_library(body: bytes):
    """What /predict did before the Rust decoder: ``json.loads``, NaN and Infinity a 400."""
    return json.loads(body, parse_constant=_refuse_constant)


@settings(max_examples=EXAMPLES, deadline=None)
@given(doc=json_values, ascii_only=st.booleans(), prefix=st.sampled_from([b"", b" ", b"\xef\xbb\xbf"]))
def test_the_fast_json_decoder_reads_every_document_as_the_standard_library_does(doc, ascii_only, prefix):
    """/predict decodes with pydantic_core (Rust) and falls back to ``json.loads`` on anything
    the fast decoder refuses: whatever a client sends, the document (and every number's type)
    is the one the standard library reads, and a refusal is the standard library's."""
    body = prefix + json.dumps(doc, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")
    fast, slow = _decoded(payloads.decode_json, body), _decoded(_standard_library, body)
    assert fast[0] == slow[0]
    if fast[0] == "doc":
        assert _typed(fast[1]) == _typed(slow[1])
    else:
        assert fast == slow


@settings(max_examples=EXAMPLES, deadline=None)
@given(body=st.binary(max_size=64) | st.sampled_from([b"NaN", b'{"a": -Infinity}', b"[" * 300 + b"]" * 300]))
def test_the_fast_json_decoder_refuses_what_the_standard_library_refuses(body):
    fast, slow = _decoded(payloads.decode_json, body), _decoded(_standard_library, body)
    if slow[0] == "doc":
        assert fast[0] == "doc" and _typed(fast[1]) == _typed(slow[1])
    else:
        assert fast == slow
