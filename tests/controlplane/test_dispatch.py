"""``ServingDispatch`` (``controlplane.wsgi.application``): /predict past Django's handler, the rest through it.

Called as gunicorn calls it, with a WSGI environ: the scoring route answers exactly what it
answers under Django's handler (request id, host check, the contract's error body), without the
request signals; every other path still goes through the full stack.
"""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
from django.core.signals import request_finished, request_started

from controlplane.dispatch import ServingDispatch


def _call(path: str, host: str = "localhost", method: str = "POST") -> tuple[str, dict[str, str], bytes]:
    environ = {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "QUERY_STRING": "",
        "SERVER_NAME": "localhost",
        "SERVER_PORT": "80",
        "HTTP_HOST": host,
        "CONTENT_TYPE": "application/json",
        "CONTENT_LENGTH": "2",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "wsgi.input": io.BytesIO(b"{}"),
        "wsgi.url_scheme": "http",
        "wsgi.errors": io.StringIO(),
    }
    started: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]]) -> None:
        started.update(status=status, headers=dict(headers))

    # controlplane.wsgi builds the same; importing it would start a serving worker in the test run.
    from django.core.handlers.wsgi import WSGIHandler

    result = ServingDispatch(WSGIHandler())(environ, start_response)
    body = b"".join(result)
    if hasattr(result, "close"):
        result.close()
    return started["status"], started["headers"], body


@pytest.fixture
def signals() -> Any:
    seen: list[str] = []

    def on_started(**_: Any) -> None:
        seen.append("started")

    def on_finished(**_: Any) -> None:
        seen.append("finished")

    request_started.connect(on_started)
    request_finished.connect(on_finished)
    yield seen
    request_started.disconnect(on_started)
    request_finished.disconnect(on_finished)


@pytest.mark.django_db
def test_predict_answers_the_contract_without_the_request_signals(signals, settings):
    settings.ALLOWED_HOSTS = ["localhost"]
    settings.ROUTING_REFRESH_IN_BACKGROUND = False  # the table is built on this call (no worker here)
    status, headers, body = _call("/predict/demo")
    assert status.startswith("401")
    assert json.loads(body)["error"]["code"] == "unauthorized"
    assert len(headers["X-Request-ID"]) >= 16 and headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Content-Length"] == str(len(body))
    assert "Referrer-Policy" not in headers  # the admin's middleware stack did not run
    assert signals == []


@pytest.mark.django_db
def test_predict_refuses_a_host_outside_allowed_hosts_like_every_path(settings):
    settings.ALLOWED_HOSTS = ["localhost"]
    assert _call("/predict/demo", host="evil.example")[0].startswith("400")
    assert _call("/healthz", host="evil.example", method="GET")[0].startswith("400")


@pytest.mark.django_db
def test_other_paths_go_through_django_with_its_signals_and_middleware(signals, settings):
    settings.ALLOWED_HOSTS = ["localhost"]
    status, headers, _ = _call("/healthz", method="GET")
    assert status.startswith("200")
    assert headers["Referrer-Policy"] == "same-origin" and headers["X-Request-ID"]
    assert signals == ["started", "finished"]
