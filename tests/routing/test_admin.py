from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.urls import reverse

from registry.models import AuditEvent, ModelVersion
from routing.models import Endpoint, Variant
from routing.services import challenger_start, endpoint_create
from tests.routing.conftest import role_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def ep(fresh_model) -> Endpoint:
    endpoint = endpoint_create(
        actor="system", name="ep", model_name=fresh_model.name, champion_version=1, reason="launch"
    )
    challenger_start(actor="system", endpoint_name="ep", version=2, percent=20, reason="try xgboost")
    return endpoint


def _weights() -> dict[str, int]:
    return dict(Variant.objects.filter(endpoint__name="ep").values_list("name", "weight"))


def _action_url(endpoint: Endpoint, action: str) -> str:
    return reverse("admin:routing_endpoint_action", args=[endpoint.pk, action])


def test_the_endpoint_page_shows_shares_versions_roles_history_and_the_users_buttons(client, ep):
    client.force_login(role_user("dana", "data scientist"))

    page = client.get(reverse("admin:routing_endpoint_change", args=[ep.pk])).content.decode()

    assert "80.0%" in page and "20.0%" in page
    assert "champion" in page and "challenger" in page and " v2" in page
    assert "try xgboost" in page and "challenger_started" in page  # history
    assert 'id="action-challenger"' in page and 'id="action-split"' in page and 'id="action-promote"' in page
    assert 'id="action-rollback"' not in page and 'id="action-pause"' not in page  # SRE's buttons


def test_an_invalid_split_is_a_form_error_not_a_change(client, ep):
    client.force_login(role_user("dana", "data scientist"))

    response = client.post(_action_url(ep, "split"), {"weight_v1": 0, "weight_v2": 0, "reason": "x"})

    assert response.status_code == 200
    assert "must not all be zero" in response.content.decode()
    assert _weights() == {"v1": 80, "v2": 20}


def test_a_valid_split_is_applied_and_audited(client, ep):
    client.force_login(role_user("dana", "data scientist"))

    response = client.post(_action_url(ep, "split"), {"weight_v1": 50, "weight_v2": 50, "reason": "even"})

    assert response.status_code == 302
    assert _weights() == {"v1": 50, "v2": 50}
    assert AuditEvent.objects.filter(action="routing.traffic_split_set", actor="dana", reason="even").exists()


def test_a_role_without_the_permission_gets_a_message_not_a_500(client, ep):
    client.force_login(role_user("sam", "SRE"))

    response = client.post(_action_url(ep, "split"), {"weight_v1": 1, "weight_v2": 1, "reason": "x"})

    assert response.status_code == 200
    assert "routing.set_traffic" in response.content.decode()
    assert _weights() == {"v1": 80, "v2": 20}


def test_a_model_version_page_starts_it_as_a_challenger_on_an_endpoint(client, ep, fresh_model):
    client.force_login(User.objects.create_superuser("root", password="pw"))
    version = ModelVersion.objects.get(registered_model__name=fresh_model.name, version=3)
    page = client.get(reverse("admin:registry_modelversion_change", args=[version.pk])).content.decode()
    url = reverse("admin:routing_start_version", args=[version.pk])
    assert url in page

    response = client.post(url, {"endpoint": "ep", "percent": 10, "reason": "also try v3"})

    assert response.status_code == 302
    assert Variant.objects.get(endpoint__name="ep", model_version=version).role == "challenger"


def test_the_version_changelist_action_leads_to_the_start_page(client, ep, fresh_model):
    client.force_login(User.objects.create_superuser("root", password="pw"))
    version = ModelVersion.objects.get(registered_model__name=fresh_model.name, version=3)

    response = client.post(
        reverse("admin:registry_modelversion_changelist"),
        {"action": "start_as_challenger", "_selected_action": [version.pk]},
    )

    assert response.status_code == 302
    assert response["Location"] == reverse("admin:routing_start_version", args=[version.pk])


def test_starting_a_version_already_serving_is_refused_with_a_message(client, ep, fresh_model):
    client.force_login(User.objects.create_superuser("root", password="pw"))
    version = ModelVersion.objects.get(registered_model__name=fresh_model.name, version=2)

    response = client.post(
        reverse("admin:routing_start_version", args=[version.pk]),
        {"endpoint": "ep", "percent": 10, "reason": "x"},
    )

    assert response.status_code == 200 and "already serves" in response.content.decode()
