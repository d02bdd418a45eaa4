"""The one place that loads models for serving, and keeps them per worker.

``ModelStore.sync(wanted)`` runs on the routing table's refresher thread, never on a request:
it loads every wanted version not yet in memory (new before old is dropped), remembers load
failures (so the table can fall back to the champion and ``/readyz`` can say why), and drops
versions no longer wanted. A request holds a reference to the ``LoadedModel`` it picked, so a
request in flight finishes on that version even if the store drops it meanwhile.
"""

from __future__ import annotations

import copy
import logging
import threading
import time
from collections.abc import Iterable
from typing import Any

from routing.inference import LoadedModel
from routing.validation import Schema

logger = logging.getLogger(__name__)

Key = tuple[str, int]
# A version that failed to load is tried again after this long (MLflow may have been down).
RETRY_FAILED_AFTER_SECONDS = 30.0


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


def load_version(name: str, version: int, signature_inputs: list[dict[str, Any]] | None) -> LoadedModel:
    """Load ``models:/<name>/<version>`` through MLflow and prepare the native fast path."""
    import mlflow.pyfunc

    from registry.mlflow_client import client

    client()  # sets the global tracking/registry URI the loader resolves models:/ through
    pyfunc = mlflow.pyfunc.load_model(f"models:/{name}/{version}")
    schema = Schema.from_signature(signature_inputs)
    if schema is None:
        input_schema = pyfunc.metadata.get_input_schema()
        schema = Schema.from_signature(input_schema.to_dict() if input_schema else None)
    model = LoadedModel(name=name, version=version, pyfunc=pyfunc, schema=schema)
    flavors = set(pyfunc.metadata.flavors)
    try:
        if "sklearn" in flavors:
            _sklearn_fast_path(model)
        elif "xgboost" in flavors:
            _xgboost_fast_path(model)
    except Exception:  # the fast path is an optimisation; pyfunc still serves
        logger.exception("no fast path for %s v%s; serving through pyfunc", name, version)
    return model


class ModelStore:
    """Models in memory for this worker, keyed by (registered model name, version)."""

    def __init__(self) -> None:
        self._models: dict[Key, LoadedModel] = {}
        self._failures: dict[Key, tuple[str, float]] = {}
        self._lock = threading.Lock()  # one sync at a time; readers never take it

    def get(self, name: str, version: int) -> LoadedModel | None:
        return self._models.get((name, version))

    def failure(self, name: str, version: int) -> str:
        return self._failures.get((name, version), ("", 0.0))[0]

    def loaded_keys(self) -> set[Key]:
        return set(self._models)

    def sync(self, wanted: Iterable[tuple[str, int, list[dict[str, Any]] | None]], drop: bool = True) -> None:
        """Load what is wanted and missing, then (only then) drop what is no longer wanted."""
        with self._lock:
            wanted = list(wanted)
            for name, version, signature in wanted:
                key = (name, version)
                failed = self._failures.get(key)
                if key in self._models or (
                    failed and time.monotonic() - failed[1] < RETRY_FAILED_AFTER_SECONDS
                ):
                    continue
                try:
                    loaded = load_version(name, version, signature)
                except Exception as exc:  # any failure: the version is unservable, not the worker
                    logger.warning("cannot load %s v%s: %s", name, version, exc)
                    self._failures[key] = (f"{type(exc).__name__}: {exc}"[:500], time.monotonic())
                    continue
                # A new dict, so a reader never sees one being resized.
                self._models = {**self._models, key: loaded}
                self._failures.pop(key, None)
            if drop:
                keep = {(n, v) for n, v, _ in wanted}
                self._models = {k: m for k, m in self._models.items() if k in keep}
                self._failures = {k: m for k, m in self._failures.items() if k in keep}

    def retry_failed(self) -> None:
        """Forget failures so the next sync tries those versions again."""
        with self._lock:
            self._failures = {}


STORE = ModelStore()
