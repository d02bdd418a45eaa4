"""The governance flow in a real headless Chromium: challenger, four-eyes promotion, rollback."""

from __future__ import annotations

import os
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from django.db import connection
from django.urls import reverse

from registry.models import AuditEvent
from routing.governance.services import endpoint_create
from routing.models import Endpoint
from tests.conftest import require_tool
from tests.routing.helpers import alias_pushes_applied, role_user

pytestmark = pytest.mark.single_pass

# `make screenshots` refreshes the ones in docs/; ordinary runs keep theirs out of the work tree.
SHOTS = Path(os.environ.get("SCREENSHOTS_DIR") or tempfile.mkdtemp(prefix="controlplane-screenshots-"))
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--headless=new",
]


def _login(browser, live_server, username: str):
    page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
    page.goto(f"{live_server.url}/admin/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", f"pw-{username}")
    page.click("input[type=submit]")
    page.wait_for_selector("#user-tools")
    return page


def _act(page, live_server, endpoint: Endpoint, action: str, fields: dict[str, str], selects: dict[str, str]):
    page.goto(f"{live_server.url}{reverse('admin:routing_endpoint_change', args=[endpoint.pk])}")
    page.click(f"#action-{action}")
    page.wait_for_selector("#governance-form")
    for selector, value in selects.items():
        page.select_option(selector, value)
    for selector, value in fields.items():
        page.fill(selector, value)
    page.click("#confirm")
    page.wait_for_selector("#variants")
    assert "done on browser-ep" in page.inner_text(".messagelist")


def _applied_in_own_connection(name: str) -> None:
    try:
        alias_pushes_applied(name)
    finally:
        connection.close()


def _aliases(mlflow_server, name: str) -> dict[str, int]:
    # Aliases reach MLflow through the outbox, after commit. Playwright's loop runs in this
    # thread, where Django refuses database calls: wait for the outbox from another thread.
    with ThreadPoolExecutor(1) as pool:
        pool.submit(_applied_in_own_connection, name).result()
    return {a: int(v) for a, v in mlflow_server.client().get_registered_model(name).aliases.items()}


def _variants_text(page) -> str:
    return page.inner_text("#variants")


@pytest.mark.browser
@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_challenger_is_started_approved_promoted_and_rolled_back_in_the_browser(
    live_server, fresh_model, mlflow_server, settings
):
    require_tool("chromium", "the admin flow is tested in a real browser")
    from playwright.sync_api import sync_playwright

    settings.REQUIRE_PROMOTION_APPROVAL = True
    endpoint = endpoint_create(
        actor="system", name="browser-ep", model_name=fresh_model.name, champion_version=1, reason="launch"
    )
    role_user("dana", "data scientist")
    role_user("abel", "approver")
    role_user("sam", "SRE")
    SHOTS.mkdir(parents=True, exist_ok=True)

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        try:
            dana = _login(browser, live_server, "dana")
            _act(
                dana, live_server, endpoint, "challenger",
                {"#id_percent": "20", "#id_reason": "XGBoost beats logistic regression offline"},
                {"#id_version": "2"},
            )  # fmt: skip
            text = _variants_text(dana)
            assert "80.0%" in text and "20.0%" in text
            assert _aliases(mlflow_server, fresh_model.name) == {"champion": 1, "challenger": 2}
            dana.screenshot(path=str(SHOTS / "endpoint-challenger-at-20-percent.png"), full_page=True)

            _act(
                dana,
                live_server,
                endpoint,
                "request",
                {"#id_reason": "wins the A/B test"},
                {"#id_variant": "v2"},
            )
            assert "wins the A/B test" in dana.inner_text("#pending")
            assert dana.locator("#action-approve").count() == 0  # not an approver
            dana.screenshot(path=str(SHOTS / "endpoint-promotion-requested.png"), full_page=True)

            abel = _login(browser, live_server, "abel")
            _act(abel, live_server, endpoint, "approve", {"#id_reason": "dashboards look good"}, {})
            text = _variants_text(abel)
            assert "previous_champion" in text and "100.0%" in text
            assert _aliases(mlflow_server, fresh_model.name) == {"champion": 2}
            abel.screenshot(path=str(SHOTS / "endpoint-promoted.png"), full_page=True)

            sam = _login(browser, live_server, "sam")
            _act(sam, live_server, endpoint, "rollback", {"#id_reason": "p99 latency doubled"}, {})
            text = _variants_text(sam)
            assert "retired" in text and "previous_champion" not in text
            assert _aliases(mlflow_server, fresh_model.name) == {"champion": 1}
            assert "p99 latency doubled" in sam.inner_text("#history")
            sam.screenshot(path=str(SHOTS / "endpoint-rolled-back.png"), full_page=True)
        finally:
            browser.close()

    events = list(
        AuditEvent.objects.filter(object_type="endpoint", object_id=str(endpoint.pk))
        .order_by("id")
        .values_list("actor", "action")
    )
    assert events == [
        ("system", "routing.endpoint_created"),
        ("dana", "routing.challenger_started"),
        ("dana", "routing.promotion_requested"),
        ("abel", "routing.endpoint_promoted"),
        ("sam", "routing.endpoint_rolled_back"),
    ]
    champion = endpoint.variants.get(role="champion")
    assert champion.model_version.version == 1 and champion.weight == 100
