"""LOG_FORMAT=json: a real gunicorn worker writes one parseable JSON object per line, with the
request id, endpoint, variant, status and latency of every /predict and API request."""

from __future__ import annotations

import io
import json
import logging

import pytest
import requests

from controlplane.logs import BackgroundStreamHandler, TextFormatter, json_formatter
from tests.routing.serving.gunicorn_rig import Gunicorn, make_site, predict, wait_until


def _json_lines(text: str) -> list[dict]:
    lines = [line for line in text.splitlines() if line.startswith("{")]
    return [json.loads(line) for line in lines]  # a line that does not parse fails the test


@pytest.mark.slow
@pytest.mark.single_pass
def test_a_gunicorn_worker_writes_json_request_lines_for_predict_and_the_api(
    tmp_path, mlflow_server, trained_models
):
    site = make_site(tmp_path, mlflow_server.url, LOG_FORMAT="json")
    server = Gunicorn(site, workers=1).start()
    try:
        wait_until(
            lambda: predict(server.url, site.env["TEST_TOKEN"], "k1").status_code == 200, 60, "a prediction"
        )
        ok = predict(server.url, site.env["TEST_TOKEN"], "unit-7")
        refused = requests.post(f"{server.url}/predict/live", json={}, timeout=10)
        api = requests.get(f"{server.url}/api/v1/endpoints/", timeout=10)
        rid = ok.headers["X-Request-ID"]
        lines = wait_until(
            lambda: (
                [
                    r
                    for r in _json_lines(server.log_text())
                    if r.get("request_id") == api.headers["X-Request-ID"]
                ]
                and _json_lines(server.log_text())
            ),
            20,
            "the API request line",
        )
    finally:
        server.stop()

    requests_logged = {r["request_id"]: r for r in lines if r.get("logger") == "controlplane.request"}
    line = requests_logged[rid]
    assert (line["endpoint"], line["variant"], line["status"]) == ("live", ok.headers["X-Variant"], 200)
    assert line["model_version"] == ok.headers["X-Model-Version"] and 0 < line["latency_ms"] < 10_000
    assert {"time", "level", "message"} <= set(line) and line["level"] == "INFO"
    assert requests_logged[refused.headers["X-Request-ID"]]["status"] == 401
    api_line = requests_logged[api.headers["X-Request-ID"]]
    assert (api_line["path"], api_line["status"]) == ("/api/v1/endpoints/", 401)
    assert not any(r.get("path") in ("/healthz", "/metrics") for r in requests_logged.values())
    booting = [r for r in lines if r.get("logger") == "gunicorn.error" and "Booting worker" in r["message"]]
    assert booting, "gunicorn's own lines are JSON too"


def _one_line(formatter: logging.Formatter, **extra: object) -> str:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    logger = logging.getLogger("test.logs")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("hello %s", "world", extra=extra)
    finally:
        logger.removeHandler(handler)
    return stream.getvalue().strip()


def test_text_lines_carry_the_same_fields_as_key_value_pairs():
    line = _one_line(TextFormatter(), request_id="abc123", status=404, endpoint="")

    assert line.endswith("WARNING test.logs: hello world request_id=abc123 status=404")


def test_json_lines_carry_the_extra_fields():
    record = json.loads(_one_line(json_formatter(), request_id="abc123", status=404))

    assert record["message"] == "hello world" and record["status"] == 404 and record["logger"] == "test.logs"


def test_the_background_handler_writes_off_the_calling_thread_and_drains(capfd):
    handler = BackgroundStreamHandler()
    handler.setFormatter(json_formatter())
    record = logging.makeLogRecord(
        {"msg": "queued %d", "args": (1,), "levelname": "INFO", "request_id": "r1"}
    )

    handler.emit(record)
    handler.drain()

    written = json.loads(capfd.readouterr().err.strip())
    assert written["message"] == "queued 1" and written["request_id"] == "r1"


def test_the_background_handler_writes_the_traceback_and_leaves_the_record_to_other_handlers(capfd):
    handler = BackgroundStreamHandler()
    handler.setFormatter(json_formatter())
    try:
        raise ValueError("boom")
    except ValueError:
        import sys

        record = logging.makeLogRecord(
            {"msg": "failed %s", "args": ("x",), "levelname": "ERROR", "exc_info": sys.exc_info()}
        )

    handler.emit(record)
    handler.drain()

    written = json.loads(capfd.readouterr().err.strip())
    assert "ValueError: boom" in written["exc_info"] and written["message"] == "failed x"
    assert record.args == ("x",) and record.exc_info is not None  # untouched for caplog and others
