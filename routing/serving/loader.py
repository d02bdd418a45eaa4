"""The one place that loads models for serving, and keeps them per worker.

``ModelStore.sync(wanted)`` runs whenever the routing table is rebuilt: when a worker starts
(before it accepts requests, ``routing.serving.worker``) and on the refresher thread; never on a
request. It loads every wanted version not yet in memory (new before old is dropped), remembers
load failures (so the table can fall back to the champion, ``/readyz`` can say why and the
worker's status row can tell governance), and drops versions no longer wanted. A request holds a
reference to the ``LoadedModel`` it picked, so a request in flight finishes on that version even
if the store drops it meanwhile.

Weights come from the local model cache (``MODEL_CACHE_DIR``, ``routing.serving.model_cache``)
when it holds the version, else from MLflow, which fills the cache. Every MLflow call has the
tracking client's timeout (``MLFLOW_HTTP_TIMEOUT_SECONDS``, set by ``registry.mlflow_client``):
resolving ``models:/`` and downloading the artifacts alike.

A load that fails because this worker's own imports are broken (a half-imported mlflow: issue
10, item 1) is not the version's fault: ``on_broken`` is told once, and a gunicorn worker then
leaves so the master starts a fresh one (``controlplane_worker_exits_total``).
"""

from __future__ import annotations

import copy
import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any, NamedTuple

from django.conf import settings

from monitoring import metrics
from routing.serving.imports import SERVING_IMPORTS
from routing.serving.inference import LoadedModel
from routing.serving.model_cache import ModelCache
from routing.serving.validation import Schema

logger = logging.getLogger(__name__)

Key = tuple[str, int]
# A version that failed to load is tried again after this long (MLflow may have been down).
RETRY_FAILED_AFTER_SECONDS = 30.0


class Wanted(NamedTuple):
    """A model version the routing table needs in memory; ``source`` keys the local cache."""

    name: str
    version: int
    signature: list[dict[str, Any]] | None = None
    source: str = ""


def store_is_broken(exc: BaseException) -> bool:
    """True when a load failed because this worker's imports are broken, not because of the version."""
    if "partially initialized module" in str(exc):
        return True
    return isinstance(exc, ImportError) and (exc.name or "") in SERVING_IMPORTS


def _sklearn_fast_path(model: LoadedModel) -> None:
    native = model.pyfunc.get_raw_model()
    names = getattr(native, "feature_names_in_", None)
    if model.schema is None or not model.schema.all_numeric:
        return
    if names is not None and tuple(names) != model.schema.names:
        return  # trained on another column order: pyfunc reorders by name, we would not
    native = copy.deepcopy(native)
    # Fitted with column names, scikit-learn warns on every NumPy call; the batch is already
    # in the signature's (= training) order, so the names check adds nothing.
    for step in [native, *getattr(native, "named_steps", {}).values()]:
        if "feature_names_in_" in vars(step):  # Pipeline's is a property of its first step
            del step.feature_names_in_
    model.native, model.kind = native, "sklearn"


def _xgboost_fast_path(model: LoadedModel) -> None:
    native = model.pyfunc.get_raw_model()
    if model.schema is None or not model.schema.all_numeric or not hasattr(native, "get_booster"):
        return
    booster = native.get_booster()
    if booster.feature_names is not None and tuple(booster.feature_names) != model.schema.names:
        return
    booster = booster.copy()
    booster.set_param({"nthread": 1})  # one row on many threads costs 4x
    # inplace_predict on NumPy input skips the feature-name check; the order is the signature's.
    booster.feature_names = None
    model.native, model.booster, model.kind = native, booster, "xgboost"
    model.xgb_objective = str(native.get_xgb_params().get("objective") or "")


def _local_copy(name: str, version: int, source: str) -> tuple[str, str]:
    """Where ``mlflow.pyfunc.load_model`` should read the version from, and its origin."""
    if not settings.MODEL_CACHE_DIR:
        return f"models:/{name}/{version}", "mlflow"
    cache = ModelCache(settings.MODEL_CACHE_DIR)
    cached = cache.lookup(name, version, source)
    if cached is not None:
        return str(cached), "cache"
    import mlflow.artifacts

    def download(into: Any) -> str:
        return mlflow.artifacts.download_artifacts(
            artifact_uri=f"models:/{name}/{version}", dst_path=str(into)
        )

    return str(cache.store(name, version, source, download)), "mlflow"


def load_version(
    name: str, version: int, signature_inputs: list[dict[str, Any]] | None, source: str = ""
) -> LoadedModel:
    """Load one version (local cache first, else MLflow) and prepare the native fast path."""
    import mlflow.pyfunc

    from registry.mlflow_client import client

    client()  # sets the global tracking/registry URI and the HTTP timeouts the loader uses
    where, origin = _local_copy(name, version, source)
    pyfunc = mlflow.pyfunc.load_model(where)
    schema = Schema.from_signature(signature_inputs)
    if schema is None:
        input_schema = pyfunc.metadata.get_input_schema()
        schema = Schema.from_signature(input_schema.to_dict() if input_schema else None)
    model = LoadedModel(name=name, version=version, pyfunc=pyfunc, schema=schema, origin=origin)
    flavors = set(pyfunc.metadata.flavors)
    try:
        if "sklearn" in flavors:
            _sklearn_fast_path(model)
        elif "xgboost" in flavors:
            _xgboost_fast_path(model)
    except Exception:  # the fast path is an optimisation; pyfunc still serves
        logger.exception("no fast path for %s v%s; serving through pyfunc", name, version)
    return model


def cached_only(wanted: Iterable[Wanted]) -> list[Wanted]:
    """The versions of ``wanted`` the local model cache holds (loading them needs no network)."""
    if not settings.MODEL_CACHE_DIR:
        return []
    cache = ModelCache(settings.MODEL_CACHE_DIR)
    return [w for w in wanted if cache.lookup(w.name, w.version, w.source) is not None]


class ModelStore:
    """Models in memory for this worker, keyed by (registered model name, version)."""

    def __init__(self, on_broken: Callable[[str], None] | None = None) -> None:
        self._models: dict[Key, LoadedModel] = {}
        self._failures: dict[Key, tuple[str, float]] = {}
        self._lock = threading.Lock()  # one sync at a time; readers never take it
        self.on_broken = on_broken
        self._broken = False
        self.changes = 0  # bumped whenever what the store holds (or failed) changes

    def get(self, name: str, version: int) -> LoadedModel | None:
        return self._models.get((name, version))

    def failure(self, name: str, version: int) -> str:
        return self._failures.get((name, version), ("", 0.0))[0]

    def retry_due(self) -> bool:
        """A failed version is due for another try (MLflow may be back)."""
        now = time.monotonic()
        return any(now - at >= RETRY_FAILED_AFTER_SECONDS for _, at in self._failures.values())

    def status(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """What this worker holds and what failed, for its status row."""
        loaded = [{"model": n, "version": v} for n, v in sorted(self._models)]
        failed = [{"model": n, "version": v, "error": e} for (n, v), (e, _) in sorted(self._failures.items())]
        return loaded, failed

    def sync(self, wanted: Iterable[Wanted | tuple[Any, ...]], drop: bool = True) -> None:
        """Load what is wanted and missing, then (only then) drop what is no longer wanted."""
        with self._lock:
            wanted = [Wanted(*w) for w in wanted]
            for w in wanted:
                key = (w.name, w.version)
                failed = self._failures.get(key)
                if key in self._models or (
                    failed and time.monotonic() - failed[1] < RETRY_FAILED_AFTER_SECONDS
                ):
                    continue
                self._load(w)
            if drop:
                self._drop({(w.name, w.version) for w in wanted})

    def drop_unwanted(self, wanted: Iterable[Wanted | tuple[Any, ...]]) -> None:
        """Drop what is no longer wanted, unless a sync is running (the next refresh drops it then)."""
        if self._lock.acquire(blocking=False):
            try:
                self._drop({(w[0], w[1]) for w in wanted})
            finally:
                self._lock.release()

    def _drop(self, keep: set[Key]) -> None:
        if set(self._models) - keep or set(self._failures) - keep:
            self._models = {k: m for k, m in self._models.items() if k in keep}
            self._failures = {k: m for k, m in self._failures.items() if k in keep}
            self.changes += 1

    def _load(self, w: Wanted) -> None:
        key = (w.name, w.version)
        try:
            loaded = load_version(w.name, w.version, w.signature, w.source)
        except Exception as exc:  # any failure: the version is unservable, not the worker
            logger.warning("cannot load %s v%s: %s", w.name, w.version, exc)
            self._failures[key] = (f"{type(exc).__name__}: {exc}"[:500], time.monotonic())
            self.changes += 1
            metrics.record_model_load("none", "failure")
            if store_is_broken(exc):
                self._report_broken(exc)
            return
        # A new dict, so a reader never sees one being resized.
        self._models = {**self._models, key: loaded}
        self._failures.pop(key, None)
        self.changes += 1
        metrics.record_model_load(loaded.origin, "success")

    def _report_broken(self, exc: BaseException) -> None:
        if self._broken:
            return
        self._broken = True
        reason = f"{type(exc).__name__}: {exc}"
        logger.error("this worker's model store is broken beyond repair: %s", reason)
        if self.on_broken is not None:
            self.on_broken(reason)


STORE = ModelStore()
