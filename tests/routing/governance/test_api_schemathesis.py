"""schemathesis over the OpenAPI schema against a live server: no generated request gets a 5xx.

The schema is the one ``/api/schema/`` serves: the control API (``/api/v1/``, as an admin with a
DRF token) and the scoring routes (``/predict``, with a service token) that
``routing.serving.openapi`` adds to it. schemathesis (pinned) runs as its command line against
Django's live server: positive and negative cases from the schema, in every phase that needs no
links (examples, coverage, fuzzing), with a fixed seed so a failure replays.

Cost (measured on the 2-core machine): ~1,700 /api/v1 cases in ~55 s and ~460 /predict cases in
~15 s with ``SCHEMATHESIS_EXAMPLES=20`` (the coverage phase's boundary cases are most of them). The
/api/v1 run is CI's PostgreSQL pass (the stricter database), /predict the SQLite pass. Cases are counted in the HAR file schemathesis writes (one entry per request it sent).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.test import Client
from rest_framework.authtoken.models import Token

from tests.routing.helpers import start_serving

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow, pytest.mark.timeout(900)]

EXAMPLES = int(os.environ.get("SCHEMATHESIS_EXAMPLES", "20"))
SCHEMATHESIS = Path(sys.executable).parent / "schemathesis"


def _schema(tmp_path: Path, user: User) -> Path:
    client = Client()
    client.force_login(user)
    answer = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert answer.status_code == 200
    path = tmp_path / "openapi.json"
    path.write_bytes(answer.content)
    return path


def _run(schema: Path, base_url: str, header: str, paths: str, report: Path, examples: int) -> dict:
    """One schemathesis run; returns {"cases": N, "server_errors": [...], "output": text}."""
    command = [
        str(SCHEMATHESIS), "run", str(schema), "--url", base_url,
        "--header", header, "--include-path-regex", paths,
        "--checks", "not_a_server_error", "--max-examples", str(examples),
        "--phases", "examples,coverage,fuzzing", "--seed", "20261201", "--workers", "4",
        "--generation-database", "none", "--request-timeout", "20", "--no-color",
        "--suppress-health-check", "all", "--continue-on-failure",
        "--report", "har", "--report-har-path", str(report),
    ]  # fmt: skip
    started = time.monotonic()
    # cwd: schemathesis keeps a cache in ./.schemathesis; not in the checkout.
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=900, check=False, cwd=report.parent
    )
    print(f"schemathesis {paths}: {time.monotonic() - started:.0f} s")
    entries = json.loads(report.read_text())["log"]["entries"] if report.exists() else []
    errors = [
        (e["request"]["method"], e["request"]["url"][:300], e["response"]["status"])
        for e in entries
        if e["response"]["status"] >= 500 or e["response"]["status"] == 0
    ]
    return {
        "cases": len(entries),
        "server_errors": errors,
        "output": done.stdout[-4000:] + done.stderr[-2000:],
    }


def _serving(settings):
    # Small limits: the schema states them, and schemathesis' boundary cases (maxItems + 1 rows of
    # maxItems + 1 values) would otherwise be 80 MB bodies that only test the 413.
    settings.PREDICT_MAX_ROWS, settings.PREDICT_MAX_COLUMNS, settings.PREDICT_MAX_CELLS = 20, 40, 400
    settings.PREDICT_MAX_BODY_BYTES = 256 * 1024
    serving = start_serving(settings)
    serving.endpoint("demo", [{"name": "champion", "role": "champion", "version": 1, "weight": 100}])
    return serving


def _admin_schema(tmp_path: Path) -> tuple[Path, str]:
    admin = User.objects.create_superuser("schemathesis", password="pw-schemathesis")
    return _schema(tmp_path, admin), Token.objects.create(user=admin).key


# PostgreSQL is where a generated value the schema lets through can still break a write (a
# number past a column's range, a string past its length, a NUL byte): SQLite stores them all.
@pytest.mark.single_pass("postgresql")
def test_schemathesis_finds_no_server_error_in_the_control_api(
    live_server, settings, tmp_path, mlflow_server, trained_models
):
    _serving(settings).refresh()
    schema, api_token = _admin_schema(tmp_path)
    api = _run(schema, live_server.url, f"Authorization: Token {api_token}", "^/api/v1/", tmp_path / "api.har",
               EXAMPLES)  # fmt: skip
    print(f"schemathesis: /api/v1 {api['cases']} cases")
    assert api["server_errors"] == [], api["output"]
    assert api["cases"] >= 1000, (api["cases"], api["output"])


# /predict reads no database (the table is in memory): one pass is enough.
@pytest.mark.single_pass
def test_schemathesis_finds_no_server_error_in_predict(
    live_server, settings, tmp_path, mlflow_server, trained_models
):
    serving = _serving(settings)
    service_token = serving.token("schemathesis", rate_limit_per_second=0, can_override=True)
    serving.refresh()
    schema, _ = _admin_schema(tmp_path)
    predict = _run(schema, live_server.url, f"Authorization: Bearer {service_token}", "^/predict",
                   tmp_path / "predict.har", EXAMPLES * 5)  # fmt: skip
    print(f"schemathesis: /predict {predict['cases']} cases")
    assert predict["server_errors"] == [], predict["output"]
    assert predict["cases"] >= 200, predict["output"]
