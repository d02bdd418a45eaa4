"""POST /feedback/<endpoint>: ground truth and outcomes in, per-item answers, idempotent, counted."""

from __future__ import annotations

import json

import pytest
from prometheus_client import REGISTRY

from experiments.feedback_writer import FEEDBACK_BUFFER
from experiments.models import Feedback
from experiments.services import outcome_metric_declare
from tests.experiments.feedback_rig import predict, send

pytestmark = pytest.mark.django_db

TWO_ARMS = [
    {"name": "champ", "role": "champion", "version": 1, "weight": 50},
    {"name": "chall", "role": "challenger", "version": 3, "weight": 50},
]


def _counter(endpoint: str, variant: str, outcome: str) -> float:
    value = REGISTRY.get_sample_value(
        "controlplane_feedback_total", {"endpoint": endpoint, "variant": variant, "outcome": outcome}
    )
    return value or 0.0


@pytest.fixture
def rig(serving):
    serving.endpoint("fb", TWO_ARMS)
    token = serving.token("fb-svc", scopes=["predict", "feedback"])
    serving.refresh()
    return serving, token


def test_it_accepts_ground_truth_for_a_prediction_and_attributes_it_to_the_variant_that_answered(rig):
    serving, token = rig
    answer = predict(serving, token, "fb", n=3)
    before = _counter("fb", answer["variant"], "accepted")
    response = send(
        serving, token, "fb", {"items": [{"request_id": answer["request_id"], "row": 2, "label": 1}]}
    )
    assert response.status_code == 200, response.content
    assert response.json() == {"accepted": 1, "updates": 0, "rejected": []}
    row = Feedback.objects.get()
    assert (row.kind, row.request_id, row.row, row.label) == ("ground_truth", answer["request_id"], 2, 1)
    assert (row.variant, row.model_version) == (answer["variant"], answer["model_version"])
    assert row.prediction == answer["predictions"][2]
    assert _counter("fb", answer["variant"], "accepted") == before + 1


def test_the_same_request_id_and_row_twice_updates_the_label_and_is_counted(rig):
    serving, token = rig
    answer = predict(serving, token, "fb")
    item = {"request_id": answer["request_id"], "label": 0}
    assert send(serving, token, "fb", item).json()["updates"] == 0
    before = _counter("fb", answer["variant"], "duplicate")
    second = send(serving, token, "fb", [{**item, "label": 1}])
    assert second.json() == {"accepted": 1, "updates": 1, "rejected": []}
    row = Feedback.objects.get()
    assert (row.label, row.updates) == (1, 1)
    assert _counter("fb", answer["variant"], "duplicate") == before + 1


def test_twice_in_one_batch_is_one_row_with_one_update(rig):
    serving, token = rig
    answer = predict(serving, token, "fb")
    items = [
        {"request_id": answer["request_id"], "label": 0},
        {"request_id": answer["request_id"], "label": 1},
    ]
    assert send(serving, token, "fb", items).json()["updates"] == 1
    row = Feedback.objects.get()
    assert (row.label, row.updates) == (1, 1)


def test_bad_items_get_a_reason_each_and_the_rest_is_accepted(rig):
    serving, token = rig
    answer = predict(serving, token, "fb", n=2)
    rid = answer["request_id"]
    items = [
        {"request_id": rid, "row": 0, "label": 1},
        {"request_id": "no-such-request", "label": 1},
        {"request_id": rid, "row": 1, "label": "malignant"},
        {"request_id": rid, "row": 5, "label": 1},
        {"request_id": rid, "row": 1, "label": [1]},
        {"request_id": rid, "row": 1},
        "not an object",
        {"unit_key": "u-1", "metric": "conversion", "value": 1},
        {"request_id": rid, "row": 1, "value": "x"},
        {"request_id": rid, "row": -1, "label": 1},
    ]
    response = send(serving, token, "fb", items)
    assert response.status_code == 200
    body = response.json()
    assert body["accepted"] == 1
    codes = {r["index"]: (r["status"], r["code"]) for r in body["rejected"]}
    assert codes == {
        1: (404, "unknown_request_id"),
        2: (400, "invalid_label"),
        3: (400, "row_out_of_range"),
        4: (400, "invalid_label"),
        5: (400, "invalid_item"),
        6: (400, "invalid_item"),
        7: (400, "unknown_metric"),
        8: (400, "invalid_value"),
        9: (400, "invalid_item"),
    }
    assert all(r["message"] for r in body["rejected"])
    assert Feedback.objects.count() == 1


def test_json_lines_with_a_broken_line_refuses_that_line_only(rig):
    serving, token = rig
    answer = predict(serving, token, "fb", n=2)
    lines = [
        json.dumps({"request_id": answer["request_id"], "row": 0, "label": 0}),
        "{not json",
        json.dumps({"request_id": answer["request_id"], "row": 1, "label": 1}),
    ]
    response = send(serving, token, "fb", "\n".join(lines) + "\n", content_type="application/x-ndjson")
    body = response.json()
    assert (body["accepted"], [(r["index"], r["code"]) for r in body["rejected"]]) == (
        2,
        [(1, "invalid_item")],
    )


def test_outcomes_go_to_the_variant_that_served_the_unit_within_the_window(rig, settings):
    serving, token = rig
    outcome_metric_declare(actor="system", endpoint_name="fb", name="conversion", kind="binary")
    answer = predict(serving, token, "fb", X_Unit_Key="user-7")
    items = [
        {"unit_key": "user-7", "metric": "conversion", "value": 1},
        {"unit_key": "user-7", "metric": "conversion", "value": 0.5},
        {"unit_key": "never-seen", "metric": "conversion", "value": 1},
        {"unit_key": "user-7", "metric": "revenue", "value": 3},
    ]
    body = send(serving, token, "fb", items).json()
    assert body["accepted"] == 1
    assert [(r["index"], r["code"]) for r in body["rejected"]] == [
        (1, "invalid_value"),
        (2, "unknown_unit"),
        (3, "unknown_metric"),
    ]
    row = Feedback.objects.get()
    assert (row.kind, row.metric, row.value, row.variant) == ("outcome", "conversion", 1.0, answer["variant"])
    settings.FEEDBACK_ATTRIBUTION_WINDOW_SECONDS = 0  # the unit's prediction is now outside the window
    late = send(serving, token, "fb", items[:1]).json()
    assert late["rejected"][0]["code"] == "unknown_unit"


@pytest.mark.parametrize(
    ("scopes", "auth", "endpoint", "status", "code"),
    [
        (["predict"], True, "fb", 403, "forbidden"),
        (["feedback"], False, "fb", 401, "unauthorized"),
        (["feedback"], True, "nope", 404, "endpoint_not_found"),
    ],
    ids=["no-feedback-scope", "no-token", "unknown-endpoint"],
)
def test_the_front_door_is_the_same_as_predicts(serving, scopes, auth, endpoint, status, code):
    serving.endpoint("fb", TWO_ARMS)
    token = serving.token("t", scopes=scopes)
    serving.refresh()
    response = send(serving, token if auth else None, endpoint, {"items": [{"request_id": "x", "label": 1}]})
    assert response.status_code == status
    assert response.json()["error"]["code"] == code


def test_whole_body_errors_answer_the_error_contract_never_500(rig, settings):
    serving, token = rig
    settings.FEEDBACK_MAX_ITEMS = 3
    cases = [
        (b"{oops", "application/json", 400, "invalid_json"),
        (json.dumps({"items": "x"}), "application/json", 400, "invalid_request"),
        (json.dumps([]), "application/json", 400, "invalid_request"),
        (json.dumps([{"request_id": "a", "label": 1}] * 4), "application/json", 413, "payload_too_large"),
        ("a,b", "text/csv", 415, "unsupported_media_type"),
        (b"[1e999999]", "application/json", 200, None),
    ]
    for body, content_type, status, code in cases:
        response = send(serving, token, "fb", body, content_type=content_type)
        assert response.status_code == status, (body, response.content)
        if code:
            assert response.json()["error"]["code"] == code


def test_a_full_queue_refuses_the_item_with_503_and_never_loses_it_silently(rig, settings):
    serving, token = rig
    answer = predict(serving, token, "fb", n=2)
    settings.FEEDBACK_BUFFER_SIZE = 1
    items = [{"request_id": answer["request_id"], "row": r, "label": 1} for r in (0, 1)]
    response = serving.post("/feedback/fb", items, token)
    body = response.json()
    assert body["accepted"] == 1
    assert [(r["index"], r["status"], r["code"]) for r in body["rejected"]] == [(1, 503, "overloaded")]
    assert FEEDBACK_BUFFER.flush() == 1


def test_text_postgresql_cannot_hold_is_refused_per_item_not_with_a_500(rig):
    serving, token = rig
    answer = predict(serving, token, "fb")
    items = [
        {"request_id": "abc\u0000def", "label": 1},
        {"request_id": answer["request_id"], "label": "a\u0000b"},
        {"unit_key": "u", "metric": "conv\u0000", "value": 1},
        {"request_id": answer["request_id"], "label": 0},
    ]
    response = send(serving, token, "fb", items)
    assert response.status_code == 200
    body = response.json()
    assert body["accepted"] == 1
    assert [(r["index"], r["code"]) for r in body["rejected"]] == [
        (0, "invalid_item"),
        (1, "invalid_label"),
        (2, "invalid_item"),
    ]
