from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.mlflow_server import REPO

pytestmark = pytest.mark.single_pass


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
        ({"REMOTE_BACKEND_ALLOWED_HOSTS": "scoring.ml.svc:http"}, "REMOTE_BACKEND_ALLOWED_HOSTS"),
        ({"REMOTE_BACKEND_ALLOWED_HOSTS": "a.svc:70000"}, "REMOTE_BACKEND_ALLOWED_HOSTS"),
        ({"GOVERNANCE_MAX_CHALLENGER_SHARE": "150"}, "GOVERNANCE_MAX_CHALLENGER_SHARE"),
        ({"LOG_FORMAT": "xml"}, "LOG_FORMAT"),
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


def test_every_variable_the_settings_read_is_documented():
    import re

    read = set()
    for path in ("controlplane/settings.py", "controlplane/gunicorn.conf.py"):
        source = (REPO / path).read_text()
        read |= set(re.findall(r'_(?:str|bool|int|float|url)\(\s*"([A-Z_]+)"', source))
        read |= set(re.findall(r'environ\.get\(\s*"([A-Z_]+)"', source))
    documented = set(re.findall(r"`([A-Z][A-Z_]+)`", (REPO / "docs" / "configuration.md").read_text()))
    assert read and not read - documented, (
        f"undocumented in docs/configuration.md: {sorted(read - documented)}"
    )


def _settings_with_env_file(env_file, **env: str) -> subprocess.CompletedProcess:
    """The real settings in a fresh interpreter: no DJANGO_*/DATABASE_*/MLFLOW_* but what is given."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "DATABASE_", "MLFLOW_"))}
    base.update(CONTROLPLANE_VAR_DIR="/tmp/cp-settings-test", CONTROLPLANE_ENV_FILE=str(env_file), **env)
    code = "import controlplane.settings as s; print(s.SECRET_KEY, s.MLFLOW_TRACKING_URI)"
    return subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=base, capture_output=True, text=True, timeout=60
    )


def test_the_settings_read_the_env_file_make_run_writes_and_real_variables_win(tmp_path):
    env_file = tmp_path / ".env"
    env_file.write_text(
        "# Written by `make run`\n"
        "DJANGO_SECRET_KEY='from-the-env-file-0123456789-0123456789-0123456789'\n"
        "MLFLOW_TRACKING_URI='http://127.0.0.1:5123'\n"
    )

    from_file = _settings_with_env_file(env_file)
    env_wins = _settings_with_env_file(env_file, MLFLOW_TRACKING_URI="http://mlflow.example.com")
    no_file = _settings_with_env_file(tmp_path / "missing.env")

    assert from_file.returncode == 0, from_file.stderr
    assert from_file.stdout.split() == [
        "from-the-env-file-0123456789-0123456789-0123456789",
        "http://127.0.0.1:5123",
    ]
    assert env_wins.stdout.split()[1] == "http://mlflow.example.com"
    assert no_file.returncode != 0 and "DJANGO_SECRET_KEY" in no_file.stderr


def test_a_management_command_runs_with_nothing_but_the_env_file(tmp_path):
    (tmp_path / ".env").write_text(
        f"DJANGO_SECRET_KEY='{'s' * 20}{os.getpid()}{'t' * 30}'\n"
        f"DATABASE_URL='sqlite:///{tmp_path / 'db.sqlite3'}'\nCONTROLPLANE_VAR_DIR='{tmp_path / 'var'}'\n"
    )
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DJANGO_", "DATABASE_", "MLFLOW_", "CONTROLPLANE_"))
    }
    env["CONTROLPLANE_ENV_FILE"] = str(tmp_path / ".env")

    result = subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip

    assert result.returncode == 0, result.stderr
    assert (tmp_path / "db.sqlite3").exists() and (tmp_path / "var").is_dir()
