"""Models load from a local on-disk cache keyed by model, version and artifact digest.

Issue 10, item 2: a worker (re)started while MLflow was down or hung could not serve. Now a
version downloaded once is kept under ``MODEL_CACHE_DIR`` (``var/model-cache`` under
``make run``, a volume in the chart) and a restart loads it from there without asking MLflow;
every call that does go to MLflow has a timeout.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from routing.serving.loader import ModelStore, Wanted
from routing.serving.model_cache import ModelCache


@pytest.fixture
def cache_dir(settings, tmp_path) -> Path:
    settings.MODEL_CACHE_DIR = str(tmp_path / "model-cache")
    return tmp_path / "model-cache"


def _wanted(mlflow_server, name: str, version: int) -> Wanted:
    mv = mlflow_server.client().get_model_version(name, str(version))
    return Wanted(name, version, None, mv.source)


def test_a_store_started_while_mlflow_is_hung_loads_from_the_cache_at_once(
    cache_dir, mlflow_server, trained_models
):
    wanted = [
        _wanted(mlflow_server, trained_models.sklearn_name, trained_models.sklearn_version),
        _wanted(mlflow_server, trained_models.xgboost_name, trained_models.xgboost_version),
    ]
    first = ModelStore()
    first.sync(wanted)
    assert [first.get(w.name, w.version).origin for w in wanted] == ["mlflow", "mlflow"]
    with mlflow_server.frozen():
        started = time.monotonic()
        restarted = ModelStore()
        restarted.sync(wanted)
        elapsed = time.monotonic() - started
    assert [restarted.get(w.name, w.version).origin for w in wanted] == ["cache", "cache"]
    assert elapsed < 5, f"{elapsed:.1f} s"


def test_a_cold_load_from_a_hung_mlflow_gives_up_within_its_timeout(
    cache_dir, mlflow_server, trained_models, monkeypatch
):
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    wanted = [_wanted(mlflow_server, trained_models.sklearn_name, trained_models.sklearn_version)]
    store = ModelStore()
    with mlflow_server.frozen():
        started = time.monotonic()
        store.sync(wanted)
        elapsed = time.monotonic() - started
    assert store.get(wanted[0].name, wanted[0].version) is None
    assert store.failure(wanted[0].name, wanted[0].version)
    assert elapsed < 15, f"{elapsed:.1f} s"


def test_a_corrupted_cache_entry_is_downloaded_again_not_served(cache_dir, mlflow_server, trained_models):
    wanted = [_wanted(mlflow_server, trained_models.sklearn_name, trained_models.sklearn_version)]
    ModelStore().sync(wanted)
    files = [p for p in (cache_dir / "blobs").rglob("*") if p.is_file() and p.name != "MLmodel"]
    with open(max(files, key=lambda p: p.stat().st_size), "ab") as fh:
        fh.write(b"bit rot")
    again = ModelStore()
    again.sync(wanted)
    assert again.get(wanted[0].name, wanted[0].version).origin == "mlflow"
    third = ModelStore()
    third.sync(wanted)
    assert third.get(wanted[0].name, wanted[0].version).origin == "cache"  # the entry was repaired


def test_the_key_follows_the_registry_source_and_version(db, cache_dir, mlflow_server, fresh_model):
    # fresh_model's versions 1 and 3 are clones of the same logged scikit-learn model; MLflow adds
    # each download's own registered-model metadata, so they are two entries, each verified.
    v1, v3 = (_wanted(mlflow_server, fresh_model.name, v) for v in (1, 3))
    store = ModelStore()
    store.sync([v1, v3])
    assert store.get(v1.name, 1) and store.get(v3.name, 3)
    cache = ModelCache(cache_dir)
    assert cache.lookup(v3.name, 3, v3.source) not in (None, cache.lookup(v1.name, 1, v1.source))
    assert cache.lookup(v1.name, 1, v1.source) is not None
    assert cache.lookup(v1.name, 1, "models:/m-someone-else") is None  # a re-created model: not ours
    assert cache.lookup(v1.name, 2, v1.source) is None


def test_without_a_cache_directory_models_still_load_from_mlflow(settings, mlflow_server, trained_models):
    settings.MODEL_CACHE_DIR = ""
    wanted = [_wanted(mlflow_server, trained_models.sklearn_name, trained_models.sklearn_version)]
    store = ModelStore()
    store.sync(wanted)
    assert store.get(wanted[0].name, wanted[0].version).origin == "mlflow"
