from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.mlflow_server import REPO


def _load_settings(env: dict[str, str]) -> subprocess.CompletedProcess:
    """Import the real settings in a fresh interpreter with exactly this environment."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "DATABASE_", "MLFLOW_"))}
    base.update({"DJANGO_SECRET_KEY": "k" * 50, "CONTROLPLANE_VAR_DIR": "/tmp/cp-settings-test"})
    base.update(env)
    code = "import controlplane.settings as s; print(s.DATABASES['default']['ENGINE'], s.DEBUG, s.SECRET_KEY[:6])"
    return subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=base, capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"DJANGO_DEBUG": "maybe"}, "DJANGO_DEBUG"),
        ({"DATABASE_URL": "mysql://root@localhost/db"}, "DATABASE_URL"),
        ({"DATABASE_URL": "nonsense"}, "DATABASE_URL"),
        ({"MLFLOW_TRACKING_URI": "localhost:5000"}, "MLFLOW_TRACKING_URI"),
        ({"DJANGO_SECRET_KEY": ""}, "DJANGO_SECRET_KEY"),
        (
            {"DJANGO_SECRET_KEY": "", "DJANGO_SECRET_KEY_FILE": "/nonexistent/secret"},
            "DJANGO_SECRET_KEY_FILE",
        ),
        ({"PROMETHEUS_MULTIPROC_DIR": "/nonexistent/dir"}, "PROMETHEUS_MULTIPROC_DIR"),
        ({"MLFLOW_WEBHOOK_MAX_AGE_SECONDS": "soon"}, "MLFLOW_WEBHOOK_MAX_AGE_SECONDS"),
        ({"CACHE_URL": "carrier-pigeon://"}, "CACHE_URL"),
    ],
)
def test_a_bad_value_stops_start_up_naming_the_variable(env, named):
    result = _load_settings(env)
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert named in result.stderr.strip().splitlines()[-1]


def test_sqlite_under_var_is_the_default():
    result = _load_settings({})
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[0] == "django_prometheus.db.backends.sqlite3"


def test_postgresql_comes_from_database_url():
    result = _load_settings({"DATABASE_URL": "postgres://postgres@127.0.0.1:5432/x"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[0] == "django_prometheus.db.backends.postgresql"


def test_a_secret_can_come_from_a_file(tmp_path):
    secret = tmp_path / "secret"
    secret.write_text("filesecret-value\n")
    result = _load_settings({"DJANGO_SECRET_KEY": "", "DJANGO_SECRET_KEY_FILE": str(secret)})
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[2] == "filese"
