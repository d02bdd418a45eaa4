"""Each check against the data it reads: the prediction log, drift results, worker status rows and a
real Prometheus for the PromQL check."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from datetime import timedelta

import pytest
import yaml
from django.utils import timezone

from delivery.checks import (
    FAIL,
    PASS,
    SKIP,
    WAIT,
    Window,
    check_drift,
    check_error_rate,
    check_latency,
    check_min_requests,
    check_promql,
    check_workers_loaded,
    checks_validated,
)
from monitoring.models import DriftResult
from routing.governance.services import challenger_start
from routing.models import Variant, WorkerStatus
from tests.conftest import require_tool
from tests.delivery.conftest import log_rows
from tests.mlflow_server import free_port, wait_http

pytestmark = pytest.mark.django_db


@pytest.fixture
def window(endpoint) -> Window:
    challenger_start(actor="system", endpoint_name="ep", version=2, percent=10, reason="canary")
    variants = {
        v.role: v for v in Variant.objects.filter(endpoint__name="ep").select_related("model_version")
    }
    return Window("ep", variants["challenger"], variants["champion"], timezone.now() - timedelta(minutes=5))


def test_min_requests_waits_for_the_count_and_ignores_requests_before_the_step(window):
    log_rows("v2", 30, at=window.since - timedelta(seconds=1))  # the previous step
    log_rows("v2", 20)
    assert check_min_requests(window, {"count": 25}).result == WAIT
    log_rows("v2", 5, failed=True)  # a failed attempt is still a request routed to it
    assert check_min_requests(window, {"count": 25}).result == PASS


def test_error_rate_compares_the_challengers_fallbacks_with_the_champions(window):
    log_rows("v2", 99)
    log_rows("v2", 1, failed=True)
    log_rows("v1", 500)
    ok = check_error_rate(window, {"max_increase": 0.02})
    assert ok.result == PASS and ok.value == pytest.approx(0.01)
    log_rows("v2", 10, failed=True)
    bad = check_error_rate(window, {"max_increase": 0.02})
    assert bad.result == FAIL and "10.00% (11/110)" in bad.detail


def test_latency_fails_when_the_challengers_percentile_exceeds_the_champions_by_the_ratio(window):
    log_rows("v1", 100, latency_ms=10.0)
    log_rows("v2", 100, latency_ms=14.0)
    assert check_latency(window, {"percentile": 95, "max_ratio": 1.5, "slack_ms": 0}).result == PASS
    log_rows("v2", 100, latency_ms=40.0)
    slow = check_latency(window, {"percentile": 95, "max_ratio": 1.5, "slack_ms": 0})
    assert slow.result == FAIL and slow.value == pytest.approx(40.0) and slow.threshold == pytest.approx(15.0)


def test_latency_waits_for_samples_on_both_sides(window):
    log_rows("v2", 100)
    assert check_latency(window, {}).result == WAIT


def _drift(window: Window, psi: float, feature: str = "mean radius", ago: float = 0) -> None:
    now = timezone.now() - timedelta(seconds=ago)
    DriftResult.objects.create(
        endpoint="ep",
        variant="v2",
        model_name=window.challenger.endpoint.registered_model.name,
        model_version=2,
        feature=feature,
        feature_kind="numeric",
        psi=psi,
        n_live=500,
        n_reference=1000,
        reference_kind="training",
        window_start=now - timedelta(hours=1),
        window_end=now,
        computed_at=now,
    )


def test_drift_reads_the_latest_result_of_this_step_and_fails_on_the_worst_psi(window):
    assert check_drift(window, {"max_psi": 0.25}).result == SKIP
    assert check_drift(window, {"max_psi": 0.25, "required": True}).result == WAIT
    _drift(window, 0.9, ago=600)  # before the step: not this step's evidence
    assert check_drift(window, {"max_psi": 0.25}).result == SKIP
    _drift(window, 0.1)
    _drift(window, 0.4, feature="mean texture")
    bad = check_drift(window, {"max_psi": 0.25})
    assert bad.result == FAIL and "mean texture" in bad.detail


def _worker(pid: int, loaded: list, failures: list | None = None, age: float = 0) -> None:
    now = timezone.now() - timedelta(seconds=age)
    WorkerStatus.objects.create(
        host="h", pid=pid, started_at=now, heartbeat_at=now, loaded=loaded, failures=failures or []
    )


def test_workers_loaded_needs_every_live_worker_to_hold_the_version_and_none_to_fail(window):
    model = window.challenger.endpoint.registered_model.name
    assert check_workers_loaded(window, {}).result == SKIP  # nobody reports
    _worker(1, [{"model": model, "version": 2}])
    _worker(2, [{"model": model, "version": 1}])
    _worker(3, [], age=3600)  # gone: ignored
    assert check_workers_loaded(window, {}).result == WAIT
    WorkerStatus.objects.filter(pid=2).update(loaded=[{"model": model, "version": 2}])
    assert check_workers_loaded(window, {}).result == PASS
    _worker(4, [], failures=[{"model": model, "version": 2, "error": "boom"}])
    assert check_workers_loaded(window, {}).result == FAIL


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory) -> Iterator[str]:
    """A real Prometheus scraping itself once a second."""
    binary = require_tool("prometheus", "the PromQL check queries a real Prometheus")
    tmp = tmp_path_factory.mktemp("rollout-prometheus")
    port = free_port()
    config = {
        "global": {"scrape_interval": "1s"},
        "scrape_configs": [{"job_name": "self", "static_configs": [{"targets": [f"127.0.0.1:{port}"]}]}],
    }
    (tmp / "prometheus.yml").write_text(yaml.safe_dump(config))
    cmd = [
        binary,
        f"--config.file={tmp / 'prometheus.yml'}",
        f"--storage.tsdb.path={tmp / 'tsdb'}",
        f"--web.listen-address=127.0.0.1:{port}",
    ]
    with open(tmp / "log", "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{url}/-/ready", 60, proc)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_promql_checks_an_sres_query_against_a_real_prometheus(window, prometheus, settings):
    import time

    settings.ROLLOUT_PROMETHEUS_URL = prometheus
    deadline = time.monotonic() + 30
    while check_promql(window, {"query": 'up{job="self"}', "max": 2}).result == WAIT:
        assert time.monotonic() < deadline, "Prometheus never scraped itself"
        time.sleep(0.5)

    assert check_promql(window, {"query": 'up{job="self"}', "max": 0.5}).result == FAIL
    assert check_promql(window, {"query": 'up{job="self"}', "min": 1}).result == PASS
    assert (
        check_promql(window, {"query": 'absent_metric_for_$variant{endpoint="$endpoint"}', "max": 1}).result
        == WAIT
    )
    assert check_promql(window, {"query": 'scalar(up{job="self"})', "max": 1}).result == PASS  # a scalar


def test_promql_with_prometheus_away_holds_the_step_rather_than_failing_it(window, settings):
    settings.ROLLOUT_PROMETHEUS_URL = f"http://127.0.0.1:{free_port()}"
    settings.ROLLOUT_PROMETHEUS_TIMEOUT_SECONDS = 1
    away = check_promql(window, {"query": "up", "max": 1})
    assert away.result == WAIT and "did not answer" in away.detail


def test_checks_default_when_none_are_named_and_promql_needs_a_prometheus(settings):
    assert set(checks_validated(None)) == {
        "min_requests",
        "error_rate",
        "latency",
        "drift",
        "workers_loaded",
        "experiment_verdict",
        "srm",
    }
    settings.ROLLOUT_PROMETHEUS_URL = "http://prometheus:9090"
    assert checks_validated({"promql": {"query": "up", "max": 1}}) == {"promql": {"query": "up", "max": 1}}


def _experiment(window: Window, *, outcome: str, srm: bool = False, status: str = "running", ago: float = 0):
    from experiments.models import Experiment, ExperimentLook

    experiment = Experiment.objects.create(
        endpoint=window.challenger.endpoint,
        name="canary-ab",
        status=status,
        champion="v1",
        challengers=["v2"],
        primary_metric="accuracy",
        metric_kind="binary",
        direction="higher_is_better",
        minimum_effect=0.02,
        baseline_mean=0.9,
        created_by="dana",
    )
    ExperimentLook.objects.create(
        experiment=experiment,
        computed_at=timezone.now() - timedelta(seconds=ago),
        snapshot={"srm": {"p_value": 0.0001 if srm else 0.6}},
        srm_flagged=srm,
        outcomes={"v2": outcome},
    )
    return experiment


@pytest.mark.parametrize(
    ("outcome", "expected"),
    [("worse", FAIL), ("better", PASS), ("no_difference", PASS), ("not_yet", PASS), ("withheld_srm", WAIT)],
)
def test_the_experiment_verdict_check_fails_only_a_worse_challenger(window, outcome, expected):
    from delivery.checks import check_experiment_verdict

    _experiment(window, outcome=outcome)
    result = check_experiment_verdict(window, {})
    assert result.result == expected and outcome in result.detail


def test_the_experiment_checks_skip_without_an_experiment_or_a_look_during_the_step(window):
    from delivery.checks import check_experiment_verdict, check_srm

    assert check_experiment_verdict(window, {}).result == SKIP
    assert check_srm(window, {"required": True}).result == WAIT
    _experiment(window, outcome="worse", ago=3600)  # analysed before this step began
    assert check_experiment_verdict(window, {}).result == SKIP
    assert check_experiment_verdict(window, {"decided": True, "required": True}).result == WAIT


def test_the_srm_check_fails_when_the_split_does_not_match_the_weights(window):
    from delivery.checks import check_srm

    experiment = _experiment(window, outcome="not_yet", srm=True)
    flagged = check_srm(window, {})
    assert flagged.result == FAIL and "flagged" in flagged.detail
    experiment.looks.update(srm_flagged=False)
    assert check_srm(window, {}).result == PASS
