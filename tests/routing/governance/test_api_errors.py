"""One error body for the whole control API: DRF's own refusals answer the contract's shape too."""

from __future__ import annotations

import urllib.request

import pytest
import yaml
from django.contrib.auth.models import User
from rest_framework.exceptions import Throttled
from rest_framework.test import APIClient

from routing.governance.api.exceptions import api_exception_handler

pytestmark = pytest.mark.django_db


def _error(response) -> dict:
    body = response.json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"code", "message", "details"}, body
    return body["error"]


@pytest.fixture
def root() -> APIClient:
    client = APIClient()
    client.force_login(User.objects.create_superuser("root", password="pw"))
    return client


def test_an_anonymous_caller_gets_401_with_a_challenge_and_the_error_body():
    response = APIClient().get("/api/v1/endpoints/")

    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Token"
    assert _error(response)["code"] == "not_authenticated"


def test_an_unknown_token_gets_401_with_the_error_body():
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Token not-a-token")

    response = client.get("/api/v1/endpoints/")

    assert response.status_code == 401
    error = _error(response)
    assert error["code"] == "authentication_failed" and "Invalid token" in error["message"]


def test_an_unknown_endpoint_is_404_with_the_error_body(root):
    response = root.get("/api/v1/endpoints/no-such-endpoint/")

    assert response.status_code == 404
    assert _error(response)["code"] == "not_found"


def test_a_wrong_method_is_405_with_allow_and_the_error_body(root):
    response = root.delete("/api/v1/endpoints/")

    assert response.status_code == 405
    assert "GET" in response["Allow"]
    error = _error(response)
    assert error["code"] == "method_not_allowed" and "DELETE" in error["message"]


def test_malformed_json_is_400_parse_error_with_the_error_body(root):
    response = root.post("/api/v1/endpoints/", data="{not json", content_type="application/json")

    assert response.status_code == 400
    assert _error(response)["code"] == "parse_error"


def test_a_media_type_the_api_does_not_read_is_415_with_the_error_body(root):
    response = root.post("/api/v1/endpoints/", data="name=x", content_type="text/plain")

    assert response.status_code == 415
    assert _error(response)["code"] == "unsupported_media_type"


def test_field_validation_names_each_field_in_the_error_body(root):
    response = root.post("/api/v1/endpoints/", {"name": "x"}, format="json")

    assert response.status_code == 400
    error = _error(response)
    assert error["code"] == "invalid"
    assert "model_name" in error["message"] and "model_name" in error["details"]


def test_a_throttled_call_is_429_with_retry_after_and_the_error_body():
    response = api_exception_handler(Throttled(wait=3), {})

    assert response.status_code == 429
    assert response["Retry-After"] == "3"
    assert response.data["error"]["code"] == "throttled"
    assert response.data["error"]["details"] == {"wait_seconds": 3}


def test_the_schema_documents_the_error_body_on_every_api_operation(root):
    schema = yaml.safe_load(root.get("/api/schema/").content)

    error = schema["components"]["schemas"]["Error"]
    assert error["required"] == ["error"]
    operations = [
        (path, method, op)
        for path, item in schema["paths"].items()
        if path.startswith("/api/v1/")
        for method, op in item.items()
    ]
    assert len(operations) > 10
    for path, method, op in operations:
        for status in ("401", "403") + (("404",) if "{" in path else ()):
            content = op["responses"][status]["content"]["application/json"]["schema"]
            assert content["$ref"].rsplit("/", 1)[-1] in {"Error"}, (path, method, status)


@pytest.mark.parametrize(("url", "asset"), [("/api/docs/", "swagger-ui-dist"), ("/api/redoc/", "redoc")])
def test_the_api_docs_load_their_javascript_from_our_static_files_not_a_cdn(live_server, url, asset):
    html = urllib.request.urlopen(f"{live_server.url}{url}").read().decode()

    scripts = [line for line in html.splitlines() if "<script" in line and "src=" in line]
    assert scripts, html
    assert all("/static/drf_spectacular_sidecar/" in s for s in scripts), scripts
    assert "cdn" not in html.lower() and "unpkg" not in html.lower()
    src = next(s for s in scripts if asset in s).split('src="', 1)[1].split('"', 1)[0]
    js = urllib.request.urlopen(f"{live_server.url}{src}")
    assert js.status == 200 and len(js.read()) > 10_000
