"""The test rig: a real MLflow tracking server, real models, and CI's no-skip rule.

- ``mlflow_server`` (session): a real ``mlflow server`` on a free port with a temporary store;
  the control plane's settings point at it for the whole session.
- ``mlflow_server_factory``: extra servers a test may stop (outage tests).
- ``trained_models`` (session): a scikit-learn and an XGBoost model trained on real data and
  registered with signatures through the MLflow client, via the example scripts in ``mlflow/``.
- ``celery_rig`` / ``celery_workers`` (session): real Celery workers on a real Redis
  (``tests/celery_workers.py``).
- Under ``CI=true`` every skipped test fails: a tool a laptop may lack is mandatory in CI.
- ``--ci-pass sqlite|postgresql``: CI runs the suite twice, once per database, side by side.
  Tests marked ``single_pass`` do not exercise the database layer (a simulation, a chart, a
  browser, the serving path under gunicorn); each runs in one pass only, the one its marker
  names (``single_pass("postgresql")``; SQLite by default), so the two passes take about the
  same time. Without the option (``make test`` on a laptop) every test runs.
- ``--ci-shard K/N``: CI splits each pass into N sessions side by side (.ci/run: two per pass,
  which finished a little sooner than one on two cores). Whole test files go to shards, the
  heaviest first to the lightest shard, by the seconds in tests/ci_durations.json.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import pytest

from tests.celery_workers import celery_rig, celery_workers  # noqa: F401 - fixtures for every test
from tests.mlflow_server import REPO, MlflowServer

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
# mlflow.set_tracking_uri also rewrites os.environ, so the session's URL is kept here.
_SESSION: dict[str, str] = {"mlflow_url": ""}


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    if IN_CI and report.skipped and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.longrepr = f"skipped under CI=true, which forbids skips: {reason}"


CI_PASSES = ("sqlite", "postgresql")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--ci-pass",
        choices=CI_PASSES,
        default=None,
        help="run the single_pass tests that belong to this CI pass (and every other test)",
    )
    parser.addoption("--ci-shard", default=None, help="K/N: run the K-th (0-based) of N shards of the files")


def single_pass_of(item: pytest.Item) -> str | None:
    """The CI pass a ``single_pass`` test runs in; None for a test that runs in both."""
    marker = item.get_closest_marker("single_pass")
    if marker is None:
        return None
    chosen = marker.args[0] if marker.args else "sqlite"
    if chosen not in CI_PASSES:
        raise pytest.UsageError(f"{item.nodeid}: single_pass({chosen!r}) is none of {CI_PASSES}")
    return chosen


DURATIONS = Path(__file__).with_name("ci_durations.json")  # scripts/ci_durations.py refreshes it


def shard_of_files(items: list[pytest.Item], shards: int, tests_per_file: dict[str, int]) -> dict[str, int]:
    """Each test file's shard: heaviest file first, always to the lightest shard so far.

    A file weighs its seconds in tests/ci_durations.json (the last measured CI run), in proportion
    to how many of its tests this pass runs; a file not measured yet weighs 20 s per ``slow`` test
    and 0.5 s per other test.
    """
    measured = json.loads(DURATIONS.read_text()) if DURATIONS.exists() else {}
    weight: dict[str, float] = {}
    for item in items:
        path = item.location[0]
        if path in measured:
            share = measured[path] / tests_per_file[path]
        else:
            share = 20.0 if item.get_closest_marker("slow") else 0.5
        weight[path] = weight.get(path, 0.0) + share
    load, chosen = [0.0] * shards, {}
    for path in sorted(weight, key=lambda p: (-weight[p], p)):
        lightest = load.index(min(load))
        chosen[path], load[lightest] = lightest, load[lightest] + weight[path]
    return chosen


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    tests_per_file: dict[str, int] = {}
    for item in items:
        tests_per_file[item.location[0]] = tests_per_file.get(item.location[0], 0) + 1
    ci_pass = config.getoption("--ci-pass")
    if ci_pass is not None:
        _keep(config, items, lambda item: single_pass_of(item) in (None, ci_pass))
    shard = config.getoption("--ci-shard")
    if shard is not None:
        k, n = (int(x) for x in shard.split("/"))
        if not 0 <= k < n:
            raise pytest.UsageError(f"--ci-shard {shard}: K must be in 0..N-1")
        chosen = shard_of_files(items, n, tests_per_file)
        _keep(config, items, lambda item: chosen[item.location[0]] == k)


def _keep(config: pytest.Config, items: list[pytest.Item], wanted: Callable[[pytest.Item], bool]) -> None:
    kept = [item for item in items if wanted(item)]
    if len(kept) < len(items):
        config.hook.pytest_deselected(items=[item for item in items if not wanted(item)])
        items[:] = kept


def load_script(name: str) -> ModuleType:
    """Import one of the example scripts in ``mlflow/`` (a folder, never a package)."""
    path = REPO / "mlflow" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"mlflow_examples_{name}", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    server = MlflowServer(tmp_path_factory.mktemp("mlflow")).start()
    from django.conf import settings

    previous = settings.MLFLOW_TRACKING_URI
    settings.MLFLOW_TRACKING_URI = server.url
    os.environ["MLFLOW_TRACKING_URI"] = server.url
    _SESSION["mlflow_url"] = server.url
    import mlflow

    mlflow.set_tracking_uri(server.url)
    yield server
    settings.MLFLOW_TRACKING_URI = previous
    server.stop()


@pytest.fixture(autouse=True)
def _mlflow_global_uri_restored() -> Iterator[None]:
    """Tests that point the control plane elsewhere must not leak into the next test."""
    yield
    if _SESSION["mlflow_url"]:
        import mlflow

        mlflow.set_tracking_uri(_SESSION["mlflow_url"])
        mlflow.set_registry_uri(_SESSION["mlflow_url"])


@pytest.fixture
def mlflow_server_factory(
    mlflow_server: MlflowServer, tmp_path: Path
) -> Iterator[Callable[[], MlflowServer]]:
    """Start extra servers (~10 s each: a fresh store migrates) that a test may stop at will."""
    started: list[MlflowServer] = []

    def start() -> MlflowServer:
        server = MlflowServer(tmp_path / f"mlflow-{len(started)}")
        started.append(server.start())
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def use_mlflow(settings: pytest.FixtureRequest) -> Callable[[MlflowServer], None]:
    """Point the control plane (and the mlflow library) at another server for one test."""
    import mlflow

    def use(server: MlflowServer) -> None:
        settings.MLFLOW_TRACKING_URI = server.url
        mlflow.set_tracking_uri(server.url)
        mlflow.set_registry_uri(server.url)

    yield use


@dataclass(frozen=True)
class TrainedModels:
    """Names and versions registered once per session."""

    sklearn_name: str
    sklearn_version: int
    xgboost_name: str
    xgboost_version: int
    shared_name: str  # one registered model with the sklearn version 1 and the XGBoost version 2


@pytest.fixture(scope="session")
def trained_models(mlflow_server: MlflowServer) -> TrainedModels:
    sk = load_script("train_sklearn")
    xg = load_script("train_xgboost")
    sk_version = int(sk.train_and_register("test-sklearn"))
    xg_version = int(xg.train_and_register("test-xgboost", n_estimators=20))
    sk.train_and_register("test-shared")
    xg.train_and_register("test-shared", n_estimators=20)
    return TrainedModels("test-sklearn", sk_version, "test-xgboost", xg_version, "test-shared")


def clone_version(client, name: str, src) -> object:
    """Register another version of ``name`` pointing at an existing version's logged model."""
    model_id = src.source.removeprefix("models:/") if src.source.startswith("models:/m-") else None
    return client.create_model_version(name, src.source, run_id=src.run_id, model_id=model_id)


def require_tool(path_or_name: str, why: str) -> str:
    """The path of a tool the test needs; skip (fail under CI) when it is missing."""
    found = shutil.which(path_or_name)
    if not found:
        pytest.skip(f"{path_or_name} is not installed ({why}); `make tools` installs it")
    return found
