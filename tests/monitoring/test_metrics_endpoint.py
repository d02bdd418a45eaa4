"""/metrics: the contract's series, database-backed gauges, and promtool's approval."""

from __future__ import annotations

import subprocess
from datetime import timedelta

import pytest
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from monitoring import metrics
from monitoring.models import DriftResult
from tests.conftest import require_tool

pytestmark = pytest.mark.django_db

DEMO_VARIANTS = [
    ("champion", "champion", 1, 90, 0),
    ("challenger", "challenger", 2, 10, 0),
    ("shadow", "shadow", 3, 0, 50),
]


def _samples(client) -> dict[tuple[str, frozenset], float]:
    response = client.get("/metrics")
    assert response.status_code == 200
    out = {}
    for family in text_string_to_metric_families(response.content.decode()):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def _labels(**kw: str) -> frozenset:
    return frozenset(kw.items())


def _drift(variant: str, version: int, feature: str, psi: float, at, n: int = 800) -> DriftResult:
    return DriftResult.objects.create(
        endpoint="demo",
        variant=variant,
        model_name="m",
        model_version=version,
        feature=feature,
        feature_kind="numeric",
        psi=psi,
        n_live=n,
        n_reference=400,
        reference_kind="training",
        window_start=at - timedelta(hours=1),
        window_end=at,
        computed_at=at,
    )


def test_it_passes_promtool_check_metrics_with_every_kind_of_series(client, make_endpoint):
    promtool = require_tool("promtool", "checks the /metrics exposition")
    metrics.record_prediction("demo", "champion", 1, "success", 0.002)
    metrics.record_prediction("demo", "champion", 1, "client_error")
    metrics.record_request("demo", 0.003)
    metrics.record_fallback("demo", "challenger", "not_loaded")
    metrics.record_shadow("demo", "shadow", 3, "success", agreed=True)
    metrics.record_log_dropped("demo")
    metrics.set_model_loaded("demo", "champion", 1, True)
    make_endpoint("demo", DEMO_VARIANTS)
    _drift("champion", 1, "mean radius", 0.3, timezone.now())
    _drift("champion", 1, DriftResult.PREDICTION, 0.01, timezone.now())

    body = client.get("/metrics").content
    for name in ("controlplane_predictions_total", "controlplane_traffic_weight", "django_http_requests"):
        assert name.encode() in body
    check = subprocess.run([promtool, "check", "metrics"], input=body, capture_output=True, timeout=60)
    assert check.returncode == 0, check.stdout + check.stderr
    assert check.stdout == b"" and check.stderr == b"", "promtool printed warnings"


def test_it_exports_traffic_shares_and_roles_read_from_the_database(client, make_endpoint):
    make_endpoint("demo", DEMO_VARIANTS)
    samples = _samples(client)
    weight = "controlplane_traffic_weight"
    assert samples[(weight, _labels(endpoint="demo", variant="champion", model_version="1"))] == 0.9
    assert samples[(weight, _labels(endpoint="demo", variant="challenger", model_version="2"))] == 0.1
    assert samples[(weight, _labels(endpoint="demo", variant="shadow", model_version="3"))] == 0.0
    info = _labels(endpoint="demo", variant="challenger", model_version="2", role="challenger")
    assert samples[("controlplane_variant_info", info)] == 1
    assert samples[("controlplane_database_collector_up", frozenset())] == 1


def test_it_exports_only_the_latest_drift_of_configured_variants(client, make_endpoint):
    make_endpoint("demo", DEMO_VARIANTS)
    now = timezone.now()
    _drift("champion", 1, "mean radius", 0.9, now - timedelta(hours=2))
    _drift("champion", 1, "mean radius", 0.25, now, n=1234)
    _drift("champion", 1, DriftResult.PREDICTION, 0.05, now)
    _drift("retired", 7, "mean radius", 5.0, now)  # no longer configured: not exported

    samples = _samples(client)
    champion = {"endpoint": "demo", "variant": "champion", "model_version": "1"}
    feature = _labels(**champion, feature="mean radius")
    assert samples[("controlplane_feature_drift_psi", feature)] == 0.25
    assert samples[("controlplane_prediction_drift_psi", _labels(**champion))] == 0.05
    assert samples[("controlplane_drift_samples", _labels(**champion))] == 1234
    kind = _labels(**champion, reference_kind="training")
    assert samples[("controlplane_drift_reference_info", kind)] == 1
    assert not [
        k for k in samples if k[0] == "controlplane_feature_drift_psi" and ("variant", "retired") in k[1]
    ]


def test_it_refuses_an_outcome_outside_the_contract():
    with pytest.raises(ValueError, match="outcome"):
        metrics.record_prediction("demo", "champion", 1, "timeout", 0.1)


def test_open_alias_pushes_and_their_age_are_exported_until_applied(client, mlflow_server, trained_models):
    from routing.governance.services import endpoint_create
    from routing.models import AliasPush
    from tests.routing.helpers import alias_pushes_applied, make_model

    fresh_model = make_model(mlflow_server.client(), trained_models)
    endpoint_create(actor="system", name="gauge", model_name=fresh_model.name, champion_version=1, reason="r")
    AliasPush.objects.update(created_at=timezone.now() - timedelta(minutes=40))

    waiting = _samples(client)
    alias_pushes_applied(fresh_model.name)
    applied = _samples(client)

    assert waiting[("controlplane_alias_pushes_open", _labels(status="pending"))] == 1
    assert waiting[("controlplane_alias_push_oldest_age_seconds", frozenset())] >= 2400
    assert applied[("controlplane_alias_pushes_open", _labels(status="pending"))] == 0
    assert applied[("controlplane_alias_push_oldest_age_seconds", frozenset())] == 0
    assert applied[("controlplane_batch_jobs", _labels(status="queued"))] == 0


def test_it_counts_governance_events_per_endpoint_and_action_from_the_audit_trail(client, make_endpoint):
    from registry.audit import audit_record

    demo = make_endpoint("demo", DEMO_VARIANTS)

    def audit(action: str, name: str = "demo") -> None:
        audit_record(
            actor="system", action=action, object_type="endpoint", object_id=demo.pk, object_repr=name,
            before={}, after={}, reason="r",
        )  # fmt: skip

    audit("routing.endpoint_promoted")
    audit("routing.endpoint_promoted")
    audit("routing.endpoint_rolled_back")
    audit("routing.endpoint_promoted", name="gone")  # no such endpoint: no unbounded label

    samples = _samples(client)
    events = "controlplane_governance_events_total"
    assert samples[(events, _labels(endpoint="demo", action="endpoint_promoted"))] == 2
    assert samples[(events, _labels(endpoint="demo", action="endpoint_rolled_back"))] == 1
    assert not [k for k in samples if k[0] == events and ("endpoint", "gone") in k[1]]
    audit("routing.endpoint_rolled_back")
    assert _samples(client)[(events, _labels(endpoint="demo", action="endpoint_rolled_back"))] == 2
