"""Drift in the admin: a table per feature with an inline PSI chart, traffic per variant."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.template import Context, Template
from django.urls import reverse
from django.utils import timezone

from monitoring.charts import psi_sparkline
from monitoring.models import DriftResult

pytestmark = pytest.mark.django_db

VARIANTS = [("champion", "champion", 1, 90, 0), ("challenger", "challenger", 2, 10, 0)]


def _results(variant: str, version: int, feature: str, psis: list[float], kind: str = "training") -> None:
    now = timezone.now()
    for i, value in enumerate(psis):
        at = now - timedelta(hours=len(psis) - i)
        DriftResult.objects.create(
            endpoint="demo",
            variant=variant,
            model_name="m",
            model_version=version,
            feature=feature,
            feature_kind="numeric",
            psi=value,
            ks_stat=0.1,
            ks_pvalue=0.01,
            n_live=700,
            n_reference=426,
            reference_kind=kind,
            window_start=at - timedelta(hours=1),
            window_end=at,
            computed_at=at,
        )


def test_the_sparkline_draws_every_point_and_marks_a_drifted_latest_value():
    svg = str(psi_sparkline([0.01, 0.05, 0.3]))
    points = re.search(r'points="([^"]+)"', svg).group(1).split()
    assert svg.startswith("<svg") and len(points) == 3
    ys = [float(p.split(",")[1]) for p in points]
    assert ys[0] > ys[1] > ys[2]  # rising PSI draws upwards (SVG y grows downwards)
    assert "#ba2121" in svg.split("<circle")[1]  # last point above 0.2: red
    assert "#ba2121" not in str(psi_sparkline([0.01, 0.02])).split("<circle")[1]
    assert str(psi_sparkline([])) == ""


def test_the_endpoint_panel_shows_traffic_and_drift_per_variant(make_endpoint):
    make_endpoint("demo", VARIANTS)
    _results("champion", 1, "mean radius", [0.02, 0.1, 0.45])
    _results("champion", 1, DriftResult.PREDICTION, [0.01, 0.01, 0.02])
    _results("challenger", 2, "mean radius", [0.03], kind="live_bootstrap")

    html = Template("{% load monitoring_panels %}{% endpoint_monitoring_panel 'demo' %}").render(Context())

    assert "Drift of champion v1" in html and "Drift of challenger v2" in html
    assert "90%" in html and "10%" in html
    assert "0.450" in html and 'class="drifted"' in html
    assert html.count("<polyline") == 3
    assert "First live predictions (no training reference)" in html
    champion = html[html.index("Drift of champion v1") :]
    assert champion.index("<strong>prediction</strong>") < champion.index("mean radius</td>")


def test_the_admin_lists_drift_results_and_the_overview_for_a_superuser(admin_client, make_endpoint):
    make_endpoint("demo", VARIANTS)
    _results("champion", 1, "mean radius", [0.05, 0.3])

    changelist = admin_client.get(reverse("admin:monitoring_driftresult_changelist"))
    overview = admin_client.get(reverse("admin:monitoring_driftresult_overview") + "?endpoint=demo")

    assert changelist.status_code == 200 and b"psi-sparkline" in changelist.content
    assert b"0.300" in changelist.content
    assert overview.status_code == 200
    assert b"Traffic and drift of demo" in overview.content and b"psi-sparkline" in overview.content


def test_drift_results_cannot_be_edited_in_the_admin(admin_client, make_endpoint):
    _results("champion", 1, "mean radius", [0.05])
    pk = DriftResult.objects.get().pk
    response = admin_client.post(reverse("admin:monitoring_driftresult_change", args=[pk]), {"psi": "0"})
    assert response.status_code == 403
    assert DriftResult.objects.get().psi == 0.05


def test_the_endpoint_page_shows_traffic_and_drift_below_the_governance_buttons(admin_client, make_endpoint):
    endpoint = make_endpoint("demo", VARIANTS)
    _results("champion", 1, "mean radius", [0.05, 0.3])

    response = admin_client.get(reverse("admin:routing_endpoint_change", args=[endpoint.pk]))

    assert response.status_code == 200
    html = response.content.decode()
    assert "Traffic and drift of demo" in html and "psi-sparkline" in html
    assert 'id="governance-actions"' in html  # routing's own template still renders
