"""In a real headless Chromium: create an endpoint and a service token from the admin, then call it."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User

from registry.models import AuditEvent
from routing.models import Endpoint, ServiceToken
from routing.models.serving import hash_token
from tests.conftest import require_tool
from tests.routing.governance.test_browser import CHROMIUM_ARGS, SHOTS, _login
from tests.routing.helpers import alias_pushes_applied

pytestmark = pytest.mark.single_pass


@pytest.mark.browser
@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_an_endpoint_and_a_token_are_created_from_the_admin_in_the_browser(
    live_server, fresh_model, mlflow_server
):
    require_tool("chromium", "the admin flow is tested in a real browser")
    from playwright.sync_api import sync_playwright

    User.objects.create_superuser("root", password="pw-root")
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        try:
            page = _login(browser, live_server, "root")
            page.goto(f"{live_server.url}/admin/routing/endpoint/")
            page.click(".object-tools a.addlink")  # the changelist's own button, not the sidebar's
            page.wait_for_selector("#governance-form")
            page.fill("#id_name", "from-the-admin")
            page.select_option("#id_champion", label=f"{fresh_model.name} v1")
            page.fill("#id_reason", "new product line")
            page.screenshot(path=str(SHOTS / "endpoint-create.png"), full_page=True)
            page.click("#confirm")
            page.wait_for_selector("#variants")
            assert "Endpoint from-the-admin created" in page.inner_text(".messagelist")
            assert "100.0%" in page.inner_text("#variants")

            page.goto(f"{live_server.url}/admin/routing/servicetoken/add/")
            page.fill("#id_name", "checkout-service")
            page.check("#token-form input[name=endpoints][value=from-the-admin]")
            page.fill("#id_reason", "checkout calls the new endpoint")
            page.click("#confirm")
            raw = page.inner_text("#raw-token").strip()
            page.screenshot(path=str(SHOTS / "token-created-once.png"), full_page=True)
        finally:
            browser.close()

    endpoint = Endpoint.objects.get(name="from-the-admin")
    assert endpoint.variants.get().model_version.version == 1
    alias_pushes_applied(fresh_model.name)  # the outbox pushes the alias after commit
    assert mlflow_server.client().get_registered_model(fresh_model.name).aliases == {"champion": "1"}
    token = ServiceToken.objects.get(name="checkout-service")
    assert list(token.endpoints.values_list("name", flat=True)) == ["from-the-admin"]
    assert token.token_hash == hash_token(raw)
    actions = set(AuditEvent.objects.filter(actor="root").values_list("action", flat=True))
    assert {"routing.endpoint_created", "routing.token_created"} <= actions
