"""Drift in the admin: a table per feature with an inline PSI chart, traffic per variant."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.template import Context, Template
from django.urls import reverse
from django.utils import timezone

from monitoring.charts import drift_histogram, psi_sparkline
from monitoring.models import DriftReference, DriftResult

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


def test_the_histogram_draws_reference_and_live_side_by_side_per_bin():
    reference = {"kind": "numeric", "n": 100, "edges": [1.0, 2.0, 3.0], "shares": [0.25, 0.25, 0.25, 0.25]}

    svg = str(drift_histogram("mean radius", reference, [0.0, 0.1, 0.2, 0.7]))

    heights = {
        side: [float(h) for h in re.findall(rf'<rect class="{side}"[^>]* height="([\d.]+)"', svg)]
        for side in ("reference", "live")
    }
    assert len(heights["reference"]) == len(heights["live"]) == 4
    assert len(set(heights["reference"])) == 1  # quantile bins: a flat reference
    assert heights["live"] == sorted(heights["live"]) and heights["live"][0] == 0  # the shift to the right
    assert "&gt; 3" in svg and "70.0%" in svg and 'data-feature="mean radius"' in svg


def test_the_categorical_histogram_keeps_the_largest_categories_and_sums_the_rest():
    reference = {"kind": "categorical", "n": 100, "shares": {f"c{i:02d}": 1 / 20 for i in range(20)}}

    svg = str(drift_histogram("colour", reference, {"new": 0.5, "c00": 0.5}))

    labels = re.findall(r"<title>([^:<]+): reference [\d.]+%</title>", svg)
    assert labels[:2] == ["c00", "new"] and labels[-1] == "other" and len(labels) == 13
    assert str(drift_histogram("colour", None, {})) == "" and str(drift_histogram("x", reference, None)) == ""


def test_the_panel_draws_a_histogram_per_feature_from_the_reference_and_the_live_shares(make_endpoint):
    make_endpoint("demo", VARIANTS)
    DriftReference.objects.create(
        model_name="m",
        model_version=1,
        kind="training",
        source="run",
        reference={
            "features": {"mean radius": {"kind": "numeric", "n": 10, "edges": [1.0], "shares": [0.5, 0.5]}},
            "prediction": {"kind": "categorical", "n": 10, "shares": {"0": 0.4, "1": 0.6}},
        },
    )
    _results("champion", 1, "mean radius", [0.45])
    DriftResult.objects.filter(feature="mean radius").update(live_shares=[0.1, 0.9])
    _results("champion", 1, DriftResult.PREDICTION, [0.01])
    DriftResult.objects.filter(feature=DriftResult.PREDICTION).update(live_shares={"0": 0.35, "1": 0.65})

    html = Template("{% load monitoring_panels %}{% endpoint_monitoring_panel 'demo' %}").render(Context())

    assert 'data-feature="mean radius"' in html and f'data-feature="{DriftResult.PREDICTION}"' in html
    assert "live 90.0%" in html and "live 65.0%" in html
