"""``manage.py check --deploy`` is clean with the environment the chart gives its web pods (issue 10, item 11).

Before the fix it warned about secure cookies, HSTS, the SSL redirect and (behind the Ingress)
the proxy header, none of which could be set.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

from tests.deploy.chart import FULLNAME, container, render
from tests.mlflow_server import REPO

pytestmark = pytest.mark.single_pass("postgresql")

# Production: an Ingress with TLS in front, secrets from a Secret, an external MLflow, Redis.
PRODUCTION = "external-mlflow"
SECRETS = {
    "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
    "DATABASE_URL": "postgres://controlplane:pw@postgresql:5432/controlplane",
    "MLFLOW_WEBHOOK_SECRET": secrets.token_urlsafe(32),
    "CACHE_URL": "redis://redis:6379/0",
    "CELERY_BROKER_URL": "redis://redis:6379/1",
}


def _pod_environment(tmp_path: Path) -> dict[str, str]:
    """The web container's environment as Kubernetes would give it, secrets as files."""
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "LC_ALL")}
    for item in container(render(PRODUCTION).get("Deployment", f"{FULLNAME}-web"))["env"]:
        if "value" in item:
            env[item["name"]] = item["value"].replace("$(POD_IP)", env.get("POD_IP", ""))
        elif item["name"] == "POD_IP":
            env["POD_IP"] = "10.42.0.7"
    for name in [n.removesuffix("_FILE") for n in env if n.endswith("_FILE")]:
        secret = tmp_path / name
        secret.write_text(SECRETS[name])
        env[f"{name}_FILE"] = str(secret)
    # Paths the pod has and this machine may not; nothing else changes.
    multiproc = tmp_path / "multiproc"
    multiproc.mkdir()
    env.update(
        CONTROLPLANE_VAR_DIR=str(tmp_path / "var"),
        PROMETHEUS_MULTIPROC_DIR=str(multiproc),
        CONTROLPLANE_ENV_FILE="",
    )
    return env


def test_check_deploy_is_clean_with_the_charts_production_environment(tmp_path):
    env = _pod_environment(tmp_path)
    assert env["DJANGO_DEBUG"] == "false" and "10.42.0.7" in env["DJANGO_ALLOWED_HOSTS"]

    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip

    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout
