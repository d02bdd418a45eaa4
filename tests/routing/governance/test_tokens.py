"""Service tokens are governed: permission-checked, audited services behind the admin and the command.

Before the fix (issue 10, item 8) tokens were created and revoked with no audit row and no
permission check, and staff could edit a token's scope in the admin, unaudited.
"""

from __future__ import annotations

import re

import pytest
from django.contrib.auth.models import Permission, User
from django.core.management import call_command
from django.urls import reverse

from registry.models import AuditEvent, RegisteredModel
from routing.governance.errors import GovernanceError
from routing.governance.tokens import service_token_create, service_token_revoke, service_token_update
from routing.models import Endpoint, ServiceToken, hash_token
from tests.routing.helpers import role_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def endpoints(db) -> list[Endpoint]:
    model = RegisteredModel.objects.create(name="tokens-model")
    return [Endpoint.objects.create(name=n, registered_model=model) for n in ("alpha", "beta")]


def _audits(action: str) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action=f"routing.{action}").order_by("id"))


def test_creating_a_token_is_audited_and_the_audit_row_never_holds_the_raw_token(endpoints, sre):
    token, raw = service_token_create(
        actor=sre, name="billing", endpoints=["alpha"], scopes=["predict", "feedback"], reason="billing svc"
    )

    [event] = _audits("token_created")
    assert event.actor == "sam" and event.object_type == "service_token" and event.object_id == str(token.pk)
    assert event.after == {
        "name": "billing",
        "prefix": raw[:10],
        "endpoints": ["alpha"],
        "scopes": ["feedback", "predict"],
        "can_override": False,
        "rate_limit_per_second": None,
        "revoked": False,
    }
    assert raw not in str(event.after) + str(event.before) and token.token_hash not in str(event.after)


@pytest.mark.parametrize("role", ["data scientist", "approver"])
def test_only_holders_of_the_token_permissions_may_create_revoke_or_edit_tokens(endpoints, role):
    user = role_user("someone", role)
    service_token_create(actor="system", name="existing", endpoints=["alpha"])

    for call in (
        lambda: service_token_create(actor=user, name="mine", all_endpoints=True),
        lambda: service_token_revoke(actor=user, name="existing"),
        lambda: service_token_update(actor=user, name="existing", all_endpoints=True),
    ):
        with pytest.raises(GovernanceError) as err:
            call()
        assert err.value.status == 403 and "token" in err.value.message
    assert list(ServiceToken.objects.values_list("name", "all_endpoints", "revoked_at")) == [
        ("existing", False, None)
    ]


def test_the_sre_group_holds_the_token_permissions(sre):
    assert all(sre.has_perm(f"routing.{p}") for p in ("create_token", "revoke_token", "edit_token_scope"))


def test_revoking_is_audited_once_and_idempotent(endpoints, sre):
    service_token_create(actor="system", name="old", all_endpoints=True)

    service_token_revoke(actor=sre, name="old", reason="leaked in a log")
    service_token_revoke(actor=sre, name="old")

    [event] = _audits("token_revoked")
    assert event.actor == "sam" and event.reason == "leaked in a log"
    assert event.before["revoked"] is False and event.after["revoked"] is True
    with pytest.raises(GovernanceError) as err:
        service_token_update(actor=sre, name="old", scopes=["batch"])
    assert err.value.status == 409


def test_a_scope_change_is_audited_with_before_and_after(endpoints, sre):
    service_token_create(actor="system", name="svc", endpoints=["alpha"])

    service_token_update(
        actor=sre,
        name="svc",
        endpoints=["alpha", "beta"],
        scopes=["predict", "batch"],
        can_override=True,
        rate_limit_per_second=5,
        reason="nightly batch scoring",
    )

    [event] = _audits("token_changed")
    assert event.before["endpoints"] == ["alpha"] and event.after["endpoints"] == ["alpha", "beta"]
    assert event.after["scopes"] == ["batch", "predict"] and event.after["can_override"] is True
    assert event.after["rate_limit_per_second"] == 5 and event.reason == "nightly batch scoring"


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"all_endpoints": True, "scopes": ["predict", "admin"]}, "Unknown scope admin"),
        ({"all_endpoints": True, "scopes": []}, "at least one scope"),
        ({"endpoints": ["nope"]}, "No endpoint named nope"),
        ({"endpoints": []}, "at least one endpoint"),
        ({"all_endpoints": True, "rate_limit_per_second": -1}, "at least 0"),
    ],
)
def test_bad_token_input_is_a_clear_400_and_creates_nothing(endpoints, sre, kwargs, words):
    with pytest.raises(GovernanceError) as err:
        service_token_create(actor=sre, name="bad", **kwargs)

    assert err.value.status == 400 and words in err.value.message
    assert not ServiceToken.objects.exists() and not AuditEvent.objects.exists()


def test_the_command_takes_scopes_and_a_rate_limit_and_is_audited_as_the_system(endpoints, capsys):
    call_command(
        "create_service_token", "jobs", "--endpoint", "beta", "--scope", "batch", "--scope", "feedback",
        "--rate-limit", "7",
    )  # fmt: skip

    raw = capsys.readouterr().out.strip()
    token = ServiceToken.objects.get(name="jobs")
    assert token.token_hash == hash_token(raw)
    assert token.scopes == ["batch", "feedback"] and token.rate_limit_per_second == 7
    [event] = _audits("token_created")
    assert event.actor == "system"
    call_command("create_service_token", "plain", "--all-endpoints")
    assert ServiceToken.objects.get(name="plain").scopes == ["predict"]


def test_the_admin_add_form_shows_the_raw_token_once_and_audits_it(client, endpoints, sre):
    client.force_login(sre)
    add = reverse("admin:routing_servicetoken_add")
    assert client.get(add).status_code == 200

    response = client.post(
        add, {"name": "web", "endpoints": ["alpha"], "scopes": ["predict"], "reason": "checkout service"}
    )

    assert response.status_code == 200
    raw = re.search(r'<code id="raw-token">([^<]+)</code>', response.content.decode()).group(1)
    token = ServiceToken.objects.get(name="web")
    assert token.token_hash == hash_token(raw)
    assert [e.actor for e in _audits("token_created")] == ["sam"]
    listing = client.get(reverse("admin:routing_servicetoken_changelist")).content.decode()
    detail = client.get(reverse("admin:routing_servicetoken_change", args=[token.pk])).content.decode()
    assert raw not in listing and raw not in detail


def test_the_admin_change_form_edits_the_scope_through_the_service(client, endpoints, sre):
    token, _ = service_token_create(actor="system", name="web", endpoints=["alpha"])
    client.force_login(sre)

    response = client.post(
        reverse("admin:routing_servicetoken_change", args=[token.pk]),
        {"endpoints": ["beta"], "scopes": ["predict", "feedback"], "reason": "moved to beta"},
    )

    assert response.status_code == 302
    token.refresh_from_db()
    assert [e.name for e in token.endpoints.all()] == ["beta"] and token.scopes == ["feedback", "predict"]
    [event] = _audits("token_changed")
    assert event.actor == "sam" and event.reason == "moved to beta"


def test_staff_with_djangos_own_change_permission_cannot_edit_a_token_unaudited(client, endpoints):
    token, _ = service_token_create(actor="system", name="web", endpoints=["alpha"])
    staff = User.objects.create_user("eve", password="pw", is_staff=True)
    staff.user_permissions.add(
        *Permission.objects.filter(
            codename__in=["change_servicetoken", "view_servicetoken", "add_servicetoken"]
        )
    )
    client.force_login(staff)

    client.post(
        reverse("admin:routing_servicetoken_change", args=[token.pk]),
        {"name": "web", "all_endpoints": "on", "can_override": "on", "scopes": '["predict","batch"]'},
    )
    client.post(reverse("admin:routing_servicetoken_add"), {"name": "sneaky", "all_endpoints": "on"})

    token.refresh_from_db()
    assert token.all_endpoints is False and token.can_override is False and token.scopes == ["predict"]
    assert not ServiceToken.objects.filter(name="sneaky").exists()


def test_the_admin_revoke_action_goes_through_the_service(client, endpoints, sre):
    token, _ = service_token_create(actor="system", name="web", endpoints=["alpha"])
    client.force_login(sre)

    client.post(
        reverse("admin:routing_servicetoken_changelist"),
        {"action": "revoke", "_selected_action": [token.pk]},
    )

    token.refresh_from_db()
    assert token.revoked_at is not None
    assert [e.actor for e in _audits("token_revoked")] == ["sam"]
