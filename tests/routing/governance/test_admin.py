from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.urls import reverse

from registry.models import AuditEvent, ModelVersion
from routing.governance.services import challenger_start, endpoint_create
from routing.models import Endpoint, Variant
from tests.routing.helpers import alias_pushes_applied, role_user

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


def test_the_endpoint_page_links_its_model_and_each_version_in_mlflow(client, ep, settings):
    settings.MLFLOW_UI_URL = "https://mlflow.example.org"
    client.force_login(role_user("dana", "data scientist"))

    page = client.get(reverse("admin:routing_endpoint_change", args=[ep.pk])).content.decode()

    model = f"https://mlflow.example.org/#/models/{ep.registered_model.name}"
    assert f'id="mlflow-model" href="{model}"' in page
    assert f'href="{model}/versions/1"' in page and f'href="{model}/versions/2"' in page


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


def _create_endpoint_post(fresh_model, **overrides) -> dict:
    version = ModelVersion.objects.get(registered_model__name=fresh_model.name, version=1)
    return {
        "name": "made-in-admin",
        "champion": version.pk,
        "gate_mode": Endpoint.GateMode.HIGHER_IS_BETTER,
        "reason": "first launch",
        **overrides,
    }


def test_the_admin_creates_an_endpoint_with_its_champion_audited_and_aliased(
    client, fresh_model, mlflow_server
):
    client.force_login(User.objects.create_superuser("root", password="pw"))

    response = client.post(reverse("admin:routing_endpoint_add"), _create_endpoint_post(fresh_model))

    endpoint = Endpoint.objects.get(name="made-in-admin")
    assert response.status_code == 302
    assert response.url == reverse("admin:routing_endpoint_change", args=[endpoint.pk])
    champion = endpoint.variants.get()
    assert (champion.role, champion.weight, champion.model_version.version) == ("champion", 100, 1)
    event = AuditEvent.objects.get(action="routing.endpoint_created", object_id=str(endpoint.pk))
    assert (event.actor, event.reason) == ("root", "first launch")
    alias_pushes_applied(fresh_model.name)
    assert mlflow_server.client().get_registered_model(fresh_model.name).aliases == {"champion": "1"}


def test_the_create_form_offers_only_servable_versions_labelled_with_their_model(client, fresh_model):
    ModelVersion.objects.filter(registered_model__name=fresh_model.name, version=3).update(
        status=ModelVersion.Status.FAILED_REGISTRATION
    )
    client.force_login(User.objects.create_superuser("root", password="pw"))

    page = client.get(reverse("admin:routing_endpoint_add")).content.decode()

    assert f"{fresh_model.name} v1" in page and f"{fresh_model.name} v2" in page
    assert f"{fresh_model.name} v3" not in page


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"name": "Not A Slug"}, "Enter a valid"),
        ({"reason": ""}, "This field is required"),
        ({"champion": 999999}, "Select a valid choice"),
        ({"gate_mode": "sideways"}, "Select a valid choice"),
    ],
)
def test_bad_create_input_is_a_form_error_and_creates_nothing(client, fresh_model, overrides, message):
    client.force_login(User.objects.create_superuser("root", password="pw"))

    response = client.post(
        reverse("admin:routing_endpoint_add"), _create_endpoint_post(fresh_model, **overrides)
    )

    assert response.status_code == 200
    assert message in response.content.decode()
    assert not Endpoint.objects.exists()
    assert not AuditEvent.objects.filter(action="routing.endpoint_created").exists()


def test_a_duplicate_endpoint_name_is_refused_by_the_service_with_nothing_half_made(client, ep, fresh_model):
    client.force_login(User.objects.create_superuser("root", password="pw"))

    response = client.post(
        reverse("admin:routing_endpoint_add"), _create_endpoint_post(fresh_model, name="ep")
    )

    assert response.status_code == 200
    assert "already exists" in response.content.decode()
    assert Endpoint.objects.count() == 1
    assert AuditEvent.objects.filter(action="routing.endpoint_created").count() == 1


def test_a_user_without_the_create_permission_sees_no_add_button_and_cannot_post(client, fresh_model):
    client.force_login(role_user("dana", "data scientist"))

    changelist = client.get(reverse("admin:routing_endpoint_changelist")).content.decode()
    response = client.post(reverse("admin:routing_endpoint_add"), _create_endpoint_post(fresh_model))

    assert reverse("admin:routing_endpoint_add") not in changelist
    assert response.status_code == 302
    assert not Endpoint.objects.exists()
