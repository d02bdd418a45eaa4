"""Machine-readable commands: ``--json`` on compute_drift and sync_registry, and
``compute_drift --fail-on-drift`` as a pipeline gate (exit status 3), run as a pipeline runs them."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.mlflow_server import REPO
from tests.routing.serving.gunicorn_rig import make_site

LOG_ROWS = """
from datetime import timedelta
from django.utils import timezone
from sklearn.datasets import load_breast_cancer
from routing.models import PredictionLog
frame = load_breast_cancer(as_frame=True).data
frame["mean radius"] = frame["mean radius"] + {shift} * frame["mean radius"].std()
at = timezone.now() - timedelta(minutes=5)
PredictionLog.objects.bulk_create(
    PredictionLog(created_at=at, request_id=f"{endpoint}-{{i}}", endpoint="{endpoint}", variant="champ",
                  model_name="test-shared", model_version=1, inputs={{"dataframe_records": [row]}},
                  outputs=[i % 2], latency_ms=1.0)
    for i, row in enumerate(frame.to_dict(orient="records"))
)
"""


def _run(site, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        env=site.env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture(scope="module")
def site(tmp_path_factory, mlflow_server, trained_models):
    return make_site(tmp_path_factory.mktemp("commands-json"), mlflow_server.url)


@pytest.mark.slow
@pytest.mark.single_pass("postgresql")
def test_compute_drift_json_and_fail_on_drift_gate_a_pipeline(site):
    site.manage("shell", "-c", LOG_ROWS.format(shift=0.0, endpoint="calm"))

    calm = _run(site, "compute_drift", "--endpoint", "calm", "--json", "--fail-on-drift")

    assert calm.returncode == 0, calm.stderr[-2000:]
    report = json.loads(calm.stdout)
    assert report["drifted"] is False and report["threshold"] == 0.2 and report["window_seconds"] == 3600
    features = {r["feature"] for r in report["results"]}
    assert "mean radius" in features and None in features  # None: the prediction
    assert {r["endpoint"] for r in report["results"]} == {"calm"}

    site.manage("shell", "-c", LOG_ROWS.format(shift=1.5, endpoint="shifted"))
    shifted = _run(site, "compute_drift", "--endpoint", "shifted", "--json", "--fail-on-drift")

    assert shifted.returncode == 3, shifted.stderr[-2000:]
    report = json.loads(shifted.stdout)  # the JSON is still complete on stdout
    radius = next(r for r in report["results"] if r["feature"] == "mean radius")
    assert report["drifted"] is True and radius["drifted"] is True and radius["psi"] > 0.2
    assert "mean radius" in shifted.stderr

    without_gate = _run(site, "compute_drift", "--endpoint", "shifted", "--json")
    assert without_gate.returncode == 0


@pytest.mark.slow
@pytest.mark.single_pass("postgresql")
def test_sync_registry_json_says_what_changed(site):
    first = _run(site, "sync_registry", "--model", "test-shared", "--json")

    assert first.returncode == 0, first.stderr[-2000:]
    report = json.loads(first.stdout)
    assert report["models_seen"] == 1 and report["versions_seen"] >= 2
    assert report["changed"] is False and report["created"] == []  # make_site already synced it
    assert set(report) >= {"tracking_uri", "seconds", "updated", "deleted", "alias_changes"}


@pytest.mark.slow
@pytest.mark.single_pass("postgresql")
def test_a_bad_window_is_exit_status_1_not_3(site):
    result = _run(site, "compute_drift", "--window", "soon", "--json", "--fail-on-drift")

    assert result.returncode == 1 and "--window" in result.stderr and result.stdout == ""
