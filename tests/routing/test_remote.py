"""Against a real ``mlflow models serve``: same answers as /predict, remote backend, breaker."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from routing.remote import RemoteBackend, RemoteUnavailable
from routing.validation import Batch
from tests.mlflow_server import free_port, scoring_server_args, wait_http
from tests.routing.serving_fixtures import Serving, breast_rows, start_serving
from tests.routing.test_predict import _formats

pytestmark = [pytest.mark.django_db, pytest.mark.slow]


@pytest.fixture
def serving(settings, db, mlflow_server, trained_models) -> Serving:
    return start_serving(settings)


@pytest.fixture(scope="module")
def scoring_server(mlflow_server, trained_models, tmp_path_factory) -> Iterator[str]:
    """``mlflow models serve --env-manager local`` for test-shared v1 (scikit-learn)."""
    port = free_port()
    bin_dir = str(Path(sys.executable).parent)  # mlflow runs `uvicorn` from PATH
    env = dict(
        os.environ,
        MLFLOW_TRACKING_URI=mlflow_server.url,
        MLFLOW_REGISTRY_URI=mlflow_server.url,
        PATH=bin_dir + os.pathsep + os.environ.get("PATH", ""),
    )
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            scoring_server_args("models:/test-shared/1", port),
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_http(f"http://127.0.0.1:{port}/ping", 120, proc)
    except Exception:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, 9)
        raise RuntimeError(f"mlflow models serve failed to start:\n{log.read_text()[-3000:]}") from None
    yield f"http://127.0.0.1:{port}"
    os.killpg(proc.pid, 15)
    proc.wait(timeout=20)


def test_every_format_answers_like_mlflow_models_serve(serving, scoring_server):
    serving.endpoint("same", [{"name": "champ", "role": "champion", "version": 1, "weight": 1}])
    token = serving.token()
    serving.refresh()
    columns, rows = breast_rows(15, start=200)
    refused_by_mlflow: set[str] = set()
    for fmt, (body, content_type) in _formats(columns, rows).items():
        data = body if isinstance(body, str) else json.dumps(body)
        theirs = requests.post(
            f"{scoring_server}/invocations", data=data, headers={"Content-Type": content_type}, timeout=30
        )
        ours = serving.post("/predict/same", body, token, content_type=content_type)
        assert ours.status_code == 200, (fmt, ours.content)
        if theirs.status_code != 200:
            refused_by_mlflow.add(fmt)
            continue
        assert ours.json()["predictions"] == theirs.json()["predictions"], fmt
    # MLflow refuses positional rows for a model with named columns; we map them by position.
    assert refused_by_mlflow == {"instances_tensor"}
    assert len(set(theirs.json()["predictions"])) == 2


def test_a_remote_variant_is_served_through_the_scoring_server(serving, scoring_server):
    serving.endpoint(
        "remote",
        [
            {
                "name": "champ",
                "role": "champion",
                "version": 1,
                "weight": 1,
                "backend": "remote",
                "remote_url": scoring_server,
            }
        ],
    )
    token = serving.token()
    snapshot = serving.refresh()
    assert snapshot.endpoints["remote"].champion.remote is not None
    columns, rows = breast_rows(10, start=300)
    response = serving.post("/predict/remote", {"dataframe_split": {"columns": columns, "data": rows}}, token)
    assert response.status_code == 200
    theirs = requests.post(
        f"{scoring_server}/invocations",
        json={"dataframe_split": {"columns": columns, "data": rows}},
        timeout=30,
    ).json()["predictions"]
    assert response.json()["predictions"] == theirs


def test_a_dead_remote_challenger_trips_the_breaker_and_the_champion_answers(serving, settings):
    settings.PREDICT_REMOTE_BREAKER_FAILURES = 3
    settings.PREDICT_REMOTE_BREAKER_COOLDOWN_SECONDS = 60
    dead = f"http://127.0.0.1:{free_port()}"
    serving.endpoint(
        "deadremote",
        [
            {"name": "champ", "role": "champion", "version": 1, "weight": 1},
            {
                "name": "far",
                "role": "challenger",
                "version": 2,
                "weight": 1,
                "backend": "remote",
                "remote_url": dead,
            },
        ],
    )
    token = serving.token(can_override=True)
    snapshot = serving.refresh()
    breaker = snapshot.endpoints["deadremote"].by_name["far"].remote.breaker
    columns, rows = breast_rows(1)
    body = {"dataframe_split": {"columns": columns, "data": rows}}
    for _ in range(3):
        response = serving.post("/predict/deadremote", body, token, x_variant="far")
        assert response.status_code == 200 and response["X-Variant"] == "champ"
    assert breaker.state == "open"
    started = time.perf_counter()
    response = serving.post("/predict/deadremote", body, token, x_variant="far")
    assert response.status_code == 200 and response["X-Variant"] == "champ"
    assert time.perf_counter() - started < 0.5  # no connection attempt while open


def test_the_breaker_lets_a_trial_through_after_the_cooldown_and_closes_on_success(scoring_server):
    backend = RemoteBackend(f"http://127.0.0.1:{free_port()}", retries=0, failure_threshold=1, cooldown=0.2)
    columns, rows = breast_rows(2)
    batch = Batch(columns, rows, None, {})
    with pytest.raises(RemoteUnavailable):
        backend.predict(batch)
    assert backend.breaker.state == "open"
    with pytest.raises(RemoteUnavailable, match="circuit open"):
        backend.predict(batch)
    backend.url = scoring_server  # the backend came back on another address: same breaker
    backend.invocations = scoring_server + "/invocations"
    time.sleep(0.25)
    assert len(backend.predict(batch)) == 2
    assert backend.breaker.state == "closed"
