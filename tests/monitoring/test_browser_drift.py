"""The drift page in a real headless Chromium: per-feature reference-against-live histograms."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.urls import reverse
from django.utils import timezone

from monitoring.models import DriftReference, DriftResult
from tests.conftest import require_tool
from tests.routing.governance.test_browser import CHROMIUM_ARGS, SHOTS, _login

pytestmark = pytest.mark.single_pass


def _result(feature: str, psi: float, live_shares) -> None:
    now = timezone.now()
    DriftResult.objects.create(
        endpoint="demo", variant="champion", model_name="m", model_version=1, feature=feature,
        feature_kind="numeric", psi=psi, n_live=800, n_reference=400, reference_kind="training",
        live_shares=live_shares, window_start=now - timedelta(hours=1), window_end=now, computed_at=now,
    )  # fmt: skip


@pytest.mark.browser
@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_the_drift_overview_shows_a_reference_against_live_histogram_per_feature(live_server, make_endpoint):
    require_tool("chromium", "the drift page is tested in a real browser")
    from playwright.sync_api import sync_playwright

    make_endpoint("demo", [("champion", "champion", 1, 100, 0)])
    quarter = {"kind": "numeric", "n": 400, "edges": [10.0, 15.0, 20.0], "shares": [0.25] * 4}
    DriftReference.objects.create(
        model_name="m", model_version=1, kind="training", source="run",
        reference={"features": {"mean radius": quarter, "mean texture": quarter}, "prediction": None},
    )  # fmt: skip
    _result("mean radius", 0.9, [0.02, 0.08, 0.2, 0.7])
    _result("mean texture", 0.01, [0.24, 0.26, 0.25, 0.25])
    User.objects.create_superuser("root", password="pw-root")
    SHOTS.mkdir(parents=True, exist_ok=True)

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        try:
            page = _login(browser, live_server, "root")
            page.goto(f"{live_server.url}{reverse('admin:monitoring_driftresult_overview')}")
            histograms = page.locator("svg.drift-histogram")
            histograms.first.wait_for()
            features = [histograms.nth(i).get_attribute("data-feature") for i in range(histograms.count())]
            radius = page.locator('svg.drift-histogram[data-feature="mean radius"]')
            assert radius.is_visible() and radius.bounding_box()["height"] > 40
            live_heights = [float(r.get_attribute("height")) for r in radius.locator("rect.live").all()]
            page.screenshot(path=str(SHOTS / "drift-histograms.png"), full_page=True)
        finally:
            browser.close()

    assert sorted(features) == ["mean radius", "mean texture"]
    assert live_heights == sorted(live_heights) and live_heights[-1] > 5 * live_heights[0]
