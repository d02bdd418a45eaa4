"""POST /predict end to end: formats, answers, headers, hot path without queries."""

from __future__ import annotations

import json

import mlflow.pyfunc
import pandas as pd
import pytest

from routing.models import PredictionLog
from routing.serving.prediction_log import BUFFER
from tests.routing.helpers import breast_rows, role_user

pytestmark = pytest.mark.django_db


CHAMPION_ONLY = [{"name": "champ", "role": "champion", "version": 1, "weight": 100}]


def _formats(columns, rows):
    records = [dict(zip(columns, r, strict=True)) for r in rows]
    csv = ",".join(f'"{c}"' for c in columns) + "\n" + "\n".join(",".join(map(repr, r)) for r in rows)
    return {
        "dataframe_split": ({"dataframe_split": {"columns": columns, "data": rows}}, "application/json"),
        "dataframe_split_index": (
            {"dataframe_split": {"index": list(range(len(rows))), "columns": columns, "data": rows}},
            "application/json",
        ),
        "dataframe_records": ({"dataframe_records": records}, "application/json"),
        "instances_records": ({"instances": records}, "application/json"),
        "instances_tensor": ({"instances": rows}, "application/json"),
        "inputs_columnar": (
            {"inputs": {c: [r[i] for r in rows] for i, c in enumerate(columns)}},
            "application/json",
        ),
        "inputs_records": ({"inputs": records}, "application/json"),
        "with_params": (
            {"dataframe_split": {"columns": columns, "data": rows}, "params": {}},
            "application/json",
        ),
        "reordered_columns": (
            {"dataframe_split": {"columns": columns[::-1], "data": [r[::-1] for r in rows]}},
            "application/json; charset=utf-8",
        ),
        "csv": (csv, "text/csv"),
    }


@pytest.mark.parametrize("version", [1, 2], ids=["sklearn", "xgboost"])
def test_every_scoring_format_gives_the_same_predictions_as_pyfunc(serving, version):
    serving.endpoint("fmt", [{"name": "champ", "role": "champion", "version": version, "weight": 1}])
    token = serving.token()
    serving.refresh()
    columns, rows = breast_rows(20, start=100)
    expected = mlflow.pyfunc.load_model(f"models:/test-shared/{version}").predict(
        pd.DataFrame(rows, columns=columns)
    )
    expected = [int(x) for x in expected]
    assert len(set(expected)) == 2  # both classes, so a constant answer would fail
    for fmt, (body, content_type) in _formats(columns, rows).items():
        response = serving.post("/predict/fmt", body, token, content_type=content_type)
        assert response.status_code == 200, (fmt, response.content)
        assert response.json()["predictions"] == expected, fmt


def test_the_answer_has_the_contract_shape_and_headers(serving):
    serving.endpoint("shape", CHAMPION_ONLY)
    token = serving.token()
    serving.refresh()
    columns, rows = breast_rows(2)
    response = serving.post(
        "/predict/shape",
        {"dataframe_split": {"columns": columns, "data": rows}},
        token,
        x_request_id="req-123456789",
    )
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"predictions", "endpoint", "variant", "model", "model_version", "request_id"}
    assert body["endpoint"] == "shape" and body["variant"] == "champ"
    assert body["model"] == "test-shared" and body["model_version"] == 1
    assert body["request_id"] == "req-123456789" == response["X-Request-ID"]
    assert response["X-Variant"] == "champ" and response["X-Model-Version"] == "1"


def test_post_predict_without_a_name_serves_the_default_endpoint(serving, settings):
    settings.DEFAULT_ENDPOINT = "default-ep"
    serving.endpoint("default-ep", CHAMPION_ONLY)
    token = serving.token()
    serving.refresh()
    columns, rows = breast_rows(1)
    response = serving.post("/predict", {"dataframe_split": {"columns": columns, "data": rows}}, token)
    assert response.status_code == 200 and response.json()["endpoint"] == "default-ep"


def test_the_hot_path_runs_no_database_query_and_logs_in_the_background(serving, django_assert_num_queries):
    serving.endpoint("noq", CHAMPION_ONLY)
    token = serving.token()
    serving.refresh()
    columns, rows = breast_rows(3)
    body = {"dataframe_split": {"columns": columns, "data": rows}}
    with django_assert_num_queries(0):
        response = serving.post("/predict/noq", body, token, x_unit_key="user-1")
        assert response.status_code == 200
    assert PredictionLog.objects.count() == 0  # nothing written synchronously
    (queued,) = BUFFER.queued()
    assert queued.request_json and queued.rows == []  # the body as sent; parsed rows not kept alive
    assert BUFFER.flush() == 1
    row = PredictionLog.objects.get()
    assert row.request_id == response.json()["request_id"] and row.endpoint == "noq"
    assert row.variant == "champ" and row.model_version == 1 and not row.is_shadow
    assert row.inputs == body  # the request as sent: replayable as is
    assert row.outputs == response.json()["predictions"]
    assert row.unit_key_hash and "user-1" not in row.unit_key_hash
    assert row.latency_ms > 0


def test_scoring_routes_skip_the_stack_built_for_people_but_keep_request_id_and_host_check(serving):
    serving.endpoint("lean", CHAMPION_ONLY)
    token = serving.token()
    serving.refresh()
    columns, rows = breast_rows(1)
    body = {"dataframe_split": {"columns": columns, "data": rows}}
    response = serving.post("/predict/lean", body, token, x_request_id="trace-0001-lean")
    assert response.status_code == 200
    assert response["X-Request-ID"] == "trace-0001-lean" == response.json()["request_id"]
    assert response["X-Content-Type-Options"] == "nosniff"
    assert "X-Frame-Options" not in response and not response.cookies  # no clickjacking/session/CSRF layer
    assert "X-Frame-Options" in serving.client.get("/healthz")  # every other path keeps the full stack
    assert serving.post("/predict/lean", body, token, host="evil.example").status_code == 400
    assert serving.post("/predict/lean/extra", body, token).status_code == 404


def test_the_log_keeps_a_unit_key_sent_in_the_body_only_hashed_and_csv_as_dataframe_split(serving):
    serving.endpoint("logforms", CHAMPION_ONLY)
    token = serving.token()
    serving.refresh()
    columns, rows = breast_rows(2)
    keyed = {"dataframe_records": [dict(zip(columns, r, strict=True)) for r in rows], "unit_key": "user-42"}
    assert serving.post("/predict/logforms", keyed, token).status_code == 200
    csv = ",".join(f'"{c}"' for c in columns) + "\n" + "\n".join(",".join(map(repr, r)) for r in rows)
    assert serving.post("/predict/logforms", csv, token, content_type="text/csv").status_code == 200
    assert BUFFER.flush() == 2
    for row in PredictionLog.objects.all():
        assert row.inputs == {"dataframe_split": {"columns": columns, "data": rows}}
        assert "user-42" not in json.dumps(row.inputs)
    assert {bool(r.unit_key_hash) for r in PredictionLog.objects.all()} == {True, False}


def test_a_full_log_buffer_counts_the_dropped_rows(serving, settings):
    from routing.serving import prediction_log

    settings.PREDICTION_LOG_BUFFER_SIZE = 2
    serving.endpoint("full", CHAMPION_ONLY)
    token = serving.token()
    serving.refresh()
    columns, rows = breast_rows(1)
    for _ in range(5):
        assert (
            serving.post(
                "/predict/full", {"dataframe_split": {"columns": columns, "data": rows}}, token
            ).status_code
            == 200
        )
    assert prediction_log.BUFFER.dropped == 3
    assert prediction_log.BUFFER.flush() == 2


def test_challenger_that_cannot_load_falls_back_to_the_champion(serving):
    serving.endpoint(
        "fallback",
        [
            {"name": "champ", "role": "champion", "version": 1, "weight": 1},
            {"name": "broken", "role": "challenger", "version": 99, "weight": 1000},
        ],
    )
    token = serving.token(can_override=True)
    snapshot = serving.refresh()
    assert "broken" in snapshot.endpoints["fallback"].by_name
    assert snapshot.endpoints["fallback"].by_name["broken"].load_error
    columns, rows = breast_rows(1)
    body = {"dataframe_split": {"columns": columns, "data": rows}}
    for key in ("a", "b", "c"):
        response = serving.post("/predict/fallback", body, token, x_unit_key=key)
        assert response.status_code == 200 and response["X-Variant"] == "champ"
    forced = serving.post("/predict/fallback", body, token, x_variant="broken")
    assert forced.status_code == 200 and forced["X-Variant"] == "champ"
    BUFFER.flush()
    assert set(PredictionLog.objects.values_list("fallback_from", flat=True)) == {"broken"}


def test_a_champion_that_cannot_load_is_a_503_and_not_ready(serving):
    serving.endpoint("dead", [{"name": "champ", "role": "champion", "version": 98, "weight": 1}])
    token = serving.token()
    serving.refresh()
    columns, rows = breast_rows(1)
    response = serving.post("/predict/dead", {"dataframe_split": {"columns": columns, "data": rows}}, token)
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "no_variant_available"
    assert serving.client.get("/readyz").status_code == 503  # its only endpoint cannot serve
    serving.client.force_login(role_user("sre-on-call", "SRE"))
    ready = serving.client.get("/readyz")
    assert any("dead" in p and "not loaded" in p for p in ready.json()["problems"])


def test_a_weight_change_is_served_after_the_next_refresh(serving):
    from routing.models import Variant

    serving.endpoint(
        "swap",
        [
            {"name": "champ", "role": "champion", "version": 1, "weight": 100},
            {"name": "chall", "role": "challenger", "version": 2, "weight": 0},
        ],
    )
    token = serving.token()
    serving.refresh()
    columns, rows = breast_rows(1)
    body = json.dumps({"dataframe_split": {"columns": columns, "data": rows}})
    assert {serving.post("/predict/swap", body, token)["X-Variant"] for _ in range(20)} == {"champ"}
    Variant.objects.filter(name="champ").update(weight=0)
    Variant.objects.filter(name="chall").update(weight=100)
    assert {serving.post("/predict/swap", body, token)["X-Variant"] for _ in range(5)} == {"champ"}
    serving.refresh()
    answers = {serving.post("/predict/swap", body, token)["X-Model-Version"] for _ in range(20)}
    assert answers == {"2"}


def test_a_shadow_gets_its_copy_off_the_response_path_and_its_agreement_is_recorded(serving):
    from routing.serving.shadow import RUNNER

    serving.endpoint(
        "shadowed",
        [
            {"name": "champ", "role": "champion", "version": 1, "weight": 1},
            {"name": "shade", "role": "shadow", "version": 2, "mirror_percent": 100},
        ],
    )
    token = serving.token()
    serving.refresh()
    columns, rows = breast_rows(40, start=150)
    response = serving.post(
        "/predict/shadowed", {"dataframe_split": {"columns": columns, "data": rows}}, token
    )
    assert response.status_code == 200 and response["X-Variant"] == "champ"
    RUNNER.drain()
    BUFFER.flush()
    shadow = PredictionLog.objects.get(is_shadow=True)
    served = PredictionLog.objects.get(is_shadow=False)
    assert shadow.variant == "shade" and shadow.model_version == 2
    assert shadow.request_id == served.request_id
    expected = sum(a == b for a, b in zip(shadow.outputs, served.outputs, strict=True)) / 40
    assert shadow.agreement == pytest.approx(expected) and 0.5 < expected <= 1.0


def test_a_shadow_too_slow_for_its_traffic_loses_copies_counted_and_never_the_answer(serving, monkeypatch):
    from prometheus_client import REGISTRY

    from routing.serving import shadow

    serving.endpoint(
        "slowshadow",
        [
            {"name": "champ", "role": "champion", "version": 1, "weight": 1},
            {"name": "shade", "role": "shadow", "version": 2, "mirror_percent": 100},
        ],
    )
    token = serving.token()
    serving.refresh()
    runner = shadow.ShadowRunner(queue_size=1, start_worker=False)  # nothing drains its queue
    monkeypatch.setattr(shadow, "RUNNER", runner)
    monkeypatch.setattr("routing.serving.views.RUNNER", runner)
    labels = {"endpoint": "slowshadow", "variant": "shade"}
    before = REGISTRY.get_sample_value("controlplane_shadow_dropped_total", labels) or 0.0
    columns, rows = breast_rows(1)
    for _ in range(3):
        response = serving.post(
            "/predict/slowshadow", {"dataframe_split": {"columns": columns, "data": rows}}, token
        )
        assert response.status_code == 200 and response["X-Variant"] == "champ"
    assert len(runner.queued()) == 1 and runner.dropped == 2
    assert REGISTRY.get_sample_value("controlplane_shadow_dropped_total", labels) - before == 2
