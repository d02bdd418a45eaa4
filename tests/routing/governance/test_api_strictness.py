"""The control API's schema is as strict as its validation, and what it refuses is a 4xx, never a 500."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client() -> APIClient:
    client = APIClient()
    client.force_login(User.objects.create_superuser("strict", password="pw-strict"))
    return client


@pytest.fixture
def schema(admin_client) -> dict:
    answer = admin_client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert answer.status_code == 200
    return answer.json()


@pytest.mark.parametrize(
    "query",
    ["limit=172655205463658299392", "offset=172655205463658299392", "limit=0", "limit=x", "offset=-1"],
)
def test_out_of_range_paging_is_a_400_naming_the_parameter(admin_client, query):
    from registry.models import ModelVersion, RegisteredModel

    # With a row to page through: ?limit=172655205463658299392 then overflowed SQLite's LIMIT (500).
    ModelVersion.objects.create(registered_model=RegisteredModel.objects.create(name="paged"), version=1)
    answer = admin_client.get(f"/api/v1/versions/?{query}")
    assert answer.status_code == 400, answer.content[:300]
    error = answer.json()["error"]
    assert error["code"] == "invalid" and query.split("=")[0] in error["details"]


@pytest.mark.parametrize("collection", ["versions", "variants", "audit-events", "promotion-requests"])
def test_an_id_beyond_64_bits_is_a_404(admin_client, collection):
    assert admin_client.get(f"/api/v1/{collection}/172655205463658299392/").status_code == 404


def test_the_schema_states_the_bounds_the_services_enforce(schema):
    paging = {p["name"]: p["schema"] for p in schema["paths"]["/api/v1/versions/"]["get"]["parameters"]}
    assert paging["limit"]["maximum"] == 1000 and paging["offset"]["minimum"] == 0
    bodies = schema["components"]["schemas"]
    challenger = (
        bodies["ChallengerStartInputRequest"]["properties"]
        if "ChallengerStartInputRequest" in bodies
        else bodies["ChallengerStartInput"]["properties"]
    )
    assert (challenger["percent"]["minimum"], challenger["percent"]["maximum"]) == (1, 99)
    assert challenger["version"]["minimum"] == 1
    split = schema["paths"]["/api/v1/endpoints/{name}/split/"]["post"]
    assert {"200", "400", "403", "404", "409", "503"} <= set(split["responses"])


def test_the_schema_documents_predict_with_its_body_answers_and_error_body(schema):
    for path in ("/predict/{endpoint}", "/predict"):
        operation = schema["paths"][path]["post"]
        assert operation["security"] == [{"serviceToken": []}]
        assert set(operation["requestBody"]["content"]) == {"application/json", "text/csv"}
        assert {"200", "400", "401", "403", "413", "415", "429", "500", "503"} <= set(operation["responses"])
        assert operation["responses"]["400"]["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/PredictError"
        }
    request = schema["components"]["schemas"]["PredictRequest"]
    assert request["additionalProperties"] is False and len(request["oneOf"]) == 4
    assert schema["components"]["securitySchemes"]["serviceToken"]["scheme"] == "bearer"
