"""A worker imports what it needs at start, before any thread runs, and leaves when its imports break.

Issue 10, item 1: on a fresh ``make run`` the webhook for the demo models arrived while a new
worker's refresher was loading its first models; both threads imported mlflow lazily, one got a
partially initialised module, and that worker could never load a model again.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys

import pytest

from tests.mlflow_server import REPO, free_port, wait_http
from tests.routing.serving.gunicorn_rig import Gunicorn, make_site, predict, wait_until

pytestmark = [pytest.mark.slow]

# Seconds between the refresher starting its first import of mlflow and the webhook's sync; on the
# code before the fix every one of these lost the race (the window is most of mlflow's import).
JITTERS = (0.0, 0.01, 0.05, 0.1, 0.2)


@pytest.fixture(scope="module")
def migrated_db(tmp_path_factory, mlflow_server) -> str:
    """An empty, migrated SQLite file, copied for every fresh interpreter (migrating takes ~10 s)."""
    root = tmp_path_factory.mktemp("race-template")
    env = _env(root / "template.sqlite3", root, mlflow_server.url)
    done = subprocess.run(
        [sys.executable, "manage.py", "migrate", "-v0"], env=env, cwd=REPO, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return str(root / "template.sqlite3")


def _env(db, root, mlflow_url: str, **extra: str) -> dict[str, str]:
    env = dict(
        os.environ,
        DJANGO_SETTINGS_MODULE="controlplane.settings",
        DJANGO_SECRET_KEY="race-test-secret",
        CONTROLPLANE_VAR_DIR=str(root / "var"),
        DATABASE_URL=f"sqlite:///{db}",
        MLFLOW_TRACKING_URI=mlflow_url,
        ROUTING_REFRESH_SECONDS="3600",  # the test's own thread is the refresher
        **extra,
    )
    env.pop("MLFLOW_REGISTRY_URI", None)
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    return env


def _race(tmp_path, migrated_db, mlflow_server, trained_models, jitter: float) -> dict:
    source = mlflow_server.client().get_model_version(
        trained_models.sklearn_name, str(trained_models.sklearn_version)
    )
    root = tmp_path / f"run-{jitter}"
    root.mkdir()
    shutil.copy(migrated_db, root / "db.sqlite3")
    env = _env(
        root / "db.sqlite3",
        root,
        mlflow_server.url,
        RACE_MODEL=trained_models.sklearn_name,
        RACE_VERSION=str(trained_models.sklearn_version),
        RACE_SOURCE=source.source,
        RACE_RUN_ID=source.run_id,
        RACE_WEBHOOK_MODEL=trained_models.xgboost_name,
        RACE_JITTER=str(jitter),
    )
    done = subprocess.run(
        [sys.executable, str(REPO / "tests/routing/serving/fresh_worker_race.py")],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def races(tmp_path_factory, migrated_db, mlflow_server, trained_models) -> dict[float, dict]:
    """One fresh interpreter per jitter, run once for the tests below."""
    tmp = tmp_path_factory.mktemp("races")
    return {j: _race(tmp, migrated_db, mlflow_server, trained_models, j) for j in JITTERS}


@pytest.mark.single_pass  # its own database and interpreter
def test_a_webhook_racing_a_fresh_workers_first_load_never_gets_a_half_imported_mlflow(races):
    lost = {
        j: (r["errors"] or [r["later"] or r["load_error"]])[0][:160]
        for j, r in races.items()
        if r["errors"] or r["later"] or not r["champion_loaded"]
    }
    assert not lost, f"{len(lost)} of {len(JITTERS)} fresh workers lost the race:\n" + json.dumps(
        lost, indent=1
    )


@pytest.mark.single_pass  # its own database and interpreter
def test_after_the_start_hook_a_first_load_and_a_registry_sync_import_nothing_new(races):
    # Every module first imported after the hook is one two threads could race on.
    assert {j: r["imported_after_start"] for j, r in races.items()} == {j: [] for j in JITTERS}


@pytest.mark.single_pass  # its own database and interpreter
def test_a_worker_whose_model_store_is_broken_exits_and_gunicorn_replaces_it(
    tmp_path, mlflow_server, trained_models
):
    # The first worker starts with mlflow.pyfunc unimportable (a real ImportError from the import
    # system, as a half-imported mlflow gives); its replacement starts normally.
    site = make_site(tmp_path, mlflow_server.url, BROKEN_STORE_MARKER=str(tmp_path / "broken-once"))
    server = Gunicorn(site, workers=1, app="tests.routing.serving.broken_store_wsgi:application")
    try:
        server.start()
        wait_until(lambda: (tmp_path / "broken-once").exists(), 60, "the broken worker started")
        first = int((tmp_path / "broken-once").read_text())
        wait_until(lambda: server.worker_pids() - {first}, 90, "a replacement worker")
        token = site.env["TEST_TOKEN"]
        answers = [wait_until(lambda: predict(server.url, token, f"u{i}").status_code == 200, 90, "served")
                   for i in range(5)]  # fmt: skip
        assert all(answers)
        assert first not in server.worker_pids()
        exits = [
            line for line in server.metrics().splitlines()
            if line.startswith("controlplane_worker_exits_total") and 'reason="model_store_broken"' in line
        ]  # fmt: skip
        assert exits and float(exits[0].split()[-1]) >= 1, exits
    finally:
        server.stop()


def test_a_load_failing_on_a_broken_import_asks_the_worker_to_leave_once(monkeypatch, settings, tmp_path):
    # In process: the same classification, with the store's exit hook recorded instead of a SIGTERM.
    from routing.serving import loader

    settings.MODEL_CACHE_DIR = str(tmp_path / "cache")
    asked: list[str] = []
    store = loader.ModelStore(on_broken=asked.append)
    monkeypatch.setitem(sys.modules, "mlflow.pyfunc", None)
    store.sync([loader.Wanted("any-model", 1, None, "models:/m-123")])
    store.sync([loader.Wanted("any-model", 2, None, "models:/m-456")])
    assert len(asked) == 1 and "mlflow.pyfunc" in asked[0]
    # A model whose flavour needs a package we do not have is that version's problem, not the worker's.
    assert (
        loader.store_is_broken(ModuleNotFoundError("No module named 'tensorflow'", name="tensorflow"))
        is False
    )
    assert loader.store_is_broken(
        AttributeError(
            "partially initialized module 'mlflow' has no attribute 'version' (most likely due to a circular import)"
        )
    )


@pytest.mark.single_pass  # its own database
def test_the_development_server_loads_before_it_listens_and_serves_the_first_request(
    tmp_path, mlflow_server, trained_models
):
    site = make_site(tmp_path, mlflow_server.url)
    port = free_port()
    log = tmp_path / "runserver.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "manage.py", "runserver", "--noreload", f"127.0.0.1:{port}"],
            env=site.env, cwd=REPO, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz", 120, proc)
        text = log.read_text()
        assert "serving after" in text and "2 models loaded" in text, text[-2000:]
        first = predict(f"http://127.0.0.1:{port}", site.env["TEST_TOKEN"], "first-caller")
        assert first.status_code == 200, first.text
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
