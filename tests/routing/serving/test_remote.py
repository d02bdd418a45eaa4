"""Against a real ``mlflow models serve``: same answers as /predict, remote backend, breaker."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests

from routing.serving.remote import RemoteBackend, RemoteRejected, RemoteUnavailable
from routing.serving.validation import Batch
from tests.mlflow_server import free_port, scoring_server_args, wait_http
from tests.routing.helpers import breast_rows
from tests.routing.serving.test_predict import _formats

pytestmark = [pytest.mark.single_pass("postgresql"), pytest.mark.django_db, pytest.mark.slow]


@pytest.fixture(autouse=True)
def _local_remotes_allowed(settings) -> None:
    """Remote backends are off by default (REMOTE_BACKEND_ALLOWED_HOSTS empty); these run locally."""
    settings.REMOTE_BACKEND_ALLOWED_HOSTS = ["127.0.0.1"]


@dataclass
class TinyServer:
    """A real HTTP server on a free port that answers every POST the same way and counts them."""

    url: str
    hits: list[str] = field(default_factory=list)


@pytest.fixture
def tiny_server() -> Iterator[Callable[..., TinyServer]]:
    servers: list[ThreadingHTTPServer] = []

    def start(status: int, body: dict | None = None, headers: dict[str, str] | None = None) -> TinyServer:
        answer = json.dumps(body or {}).encode()

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                server.hits.append(self.path)
                self.send_response(status)
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args: object) -> None:
                pass

        httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        servers.append(httpd)
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        server = TinyServer(f"http://127.0.0.1:{httpd.server_address[1]}")
        return server

    yield start
    for httpd in servers:
        httpd.shutdown()
        httpd.server_close()


def _remote_challenger(serving, name: str, url: str) -> None:
    serving.endpoint(
        name,
        [
            {"name": "champ", "role": "champion", "version": 1, "weight": 1},
            {
                "name": "far",
                "role": "challenger",
                "version": 2,
                "weight": 1,
                "backend": "remote",
                "remote_url": url,
            },
        ],
    )


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


def test_a_remote_challenger_answering_404_trips_the_breaker_and_the_champion_answers(
    serving, settings, tiny_server
):
    settings.PREDICT_REMOTE_BREAKER_FAILURES = 3
    settings.PREDICT_REMOTE_BREAKER_COOLDOWN_SECONDS = 60
    gone = tiny_server(404, {"detail": "Not Found"})
    _remote_challenger(serving, "gone", gone.url)
    token = serving.token(can_override=True)
    breaker = serving.refresh().endpoints["gone"].by_name["far"].remote.breaker
    columns, rows = breast_rows(1)
    body = {"dataframe_split": {"columns": columns, "data": rows}}

    answers = [serving.post("/predict/gone", body, token, x_variant="far") for _ in range(4)]

    assert [(a.status_code, a["X-Variant"]) for a in answers] == [(200, "champ")] * 4
    assert breaker.state == "open"
    assert len(gone.hits) == 3  # one call per request (a 404 is not retried), none while open


@pytest.mark.parametrize("status", [401, 403, 405, 410, 429])
def test_any_4xx_but_a_validation_error_is_the_backends_fault(tiny_server, status):
    broken = tiny_server(status, {"error_code": "PERMISSION_DENIED"})
    backend = RemoteBackend(broken.url, retries=1, failure_threshold=1, cooldown=60)
    columns, rows = breast_rows(1)

    with pytest.raises(RemoteUnavailable, match=f"HTTP {status}"):
        backend.predict(Batch(columns, rows, None, {}))

    assert backend.breaker.state == "open" and len(broken.hits) == 1


def test_a_validation_error_from_mlflow_models_serve_is_the_clients_and_keeps_the_breaker_closed(
    scoring_server,
):
    backend = RemoteBackend(scoring_server, retries=0, failure_threshold=1, cooldown=60)
    columns, rows = breast_rows(1)

    with pytest.raises(RemoteRejected) as err:
        backend.predict(Batch(columns[:3], [row[:3] for row in rows], None, {}))

    assert err.value.status == 400 and json.loads(err.value.body)["error_code"] in (
        "BAD_REQUEST",
        "INVALID_PARAMETER_VALUE",
    )
    assert backend.breaker.state == "closed"


def test_a_redirect_is_never_followed_and_counts_as_a_failure(serving, tiny_server):
    target = tiny_server(200, {"predictions": [0]})
    redirecting = tiny_server(307, {}, {"Location": f"{target.url}/invocations"})
    _remote_challenger(serving, "moved", redirecting.url)
    token = serving.token(can_override=True)
    serving.refresh()
    columns, rows = breast_rows(1)

    response = serving.post(
        "/predict/moved", {"dataframe_split": {"columns": columns, "data": rows}}, token, x_variant="far"
    )

    assert response.status_code == 200 and response["X-Variant"] == "champ"
    assert len(redirecting.hits) == 1 and target.hits == []


def test_a_host_taken_off_the_allowlist_gets_no_more_rows(serving, settings, tiny_server):
    remote = tiny_server(200, {"predictions": [1]})
    _remote_challenger(serving, "narrowed", remote.url)
    token = serving.token(can_override=True)
    serving.refresh()
    columns, rows = breast_rows(1)
    body = {"dataframe_split": {"columns": columns, "data": rows}}
    assert serving.post("/predict/narrowed", body, token, x_variant="far")["X-Variant"] == "far"

    settings.REMOTE_BACKEND_ALLOWED_HOSTS = ["scoring.ml.svc"]
    response = serving.post("/predict/narrowed", body, token, x_variant="far")

    assert response.status_code == 200 and response["X-Variant"] == "champ"
    assert len(remote.hits) == 1
