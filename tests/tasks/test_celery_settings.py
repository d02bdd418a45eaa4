"""Celery's settings come from the environment and fail loudly, like every other setting."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.mlflow_server import REPO


def _celery_settings(env: dict[str, str], tmp_path) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "CELERY_", "SCHEDULE_"))}
    base.update({"DJANGO_SECRET_KEY": "k" * 50, "CONTROLPLANE_VAR_DIR": str(tmp_path / "var"), **env})
    code = (
        "import controlplane.settings as s; "
        "print(s.CELERY_BROKER_URL, s.CELERY_BROKER_TRANSPORT_OPTIONS, s.CELERY_BEAT_SCHEDULE)"
    )
    return subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=base, capture_output=True, text=True, timeout=60
    )


def test_without_a_broker_url_make_run_gets_an_embedded_broker_under_var(tmp_path):
    result = _celery_settings({}, tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("filesystem://")
    assert str(tmp_path / "var" / "celery" / "queue") in result.stdout
    assert (tmp_path / "var" / "celery" / "control").is_dir()


def test_redis_gets_a_visibility_timeout_and_the_key_prefix(tmp_path):
    env = {"CELERY_BROKER_URL": "redis://cache:6379/1", "CELERY_BROKER_KEY_PREFIX": "blue:"}
    result = _celery_settings(env, tmp_path)
    assert result.returncode == 0, result.stderr
    assert "'visibility_timeout': 3600" in result.stdout and "'global_keyprefix': 'blue:'" in result.stdout


def test_the_beat_schedule_takes_its_periods_from_the_environment(tmp_path):
    result = _celery_settings({"SCHEDULE_SYNC_REGISTRY_SECONDS": "60"}, tmp_path)
    assert result.returncode == 0, result.stderr
    assert "'registry.sync_registry': {'task': 'registry.sync_registry', 'schedule': 60.0}" in result.stdout
    assert "'monitoring.compute_drift'" in result.stdout


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"CELERY_BROKER_URL": "amqp://guest@rabbit//"}, "CELERY_BROKER_URL"),
        ({"CELERY_BROKER_URL": "redis://r", "CELERY_VISIBILITY_TIMEOUT_SECONDS": "60"}, "CELERY_VISIBILITY"),
        ({"CELERY_TASK_TIME_LIMIT_SECONDS": "long"}, "CELERY_TASK_TIME_LIMIT_SECONDS"),
        ({"SCHEDULE_COMPUTE_DRIFT_SECONDS": "1"}, "SCHEDULE_COMPUTE_DRIFT_SECONDS"),
        ({"CELERY_WORKER_METRICS_PORT": "http"}, "CELERY_WORKER_METRICS_PORT"),
    ],
)
def test_a_bad_celery_value_stops_start_up_naming_the_variable(env, named, tmp_path):
    result = _celery_settings(env, tmp_path)
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert named in result.stderr.strip().splitlines()[-1]
