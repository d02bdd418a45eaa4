"""The inference step as a pure function: a loaded model and a validated batch in, predictions out.

``pyfunc.predict`` spends most of a one-row call building a DataFrame and enforcing the schema
(2.2 ms for a scikit-learn pipeline, 8 ms for XGBoost, against 0.3 ms and 0.18 ms for the native
model on a NumPy row). The batch has already been validated against the same signature, so for
scikit-learn and XGBoost models whose training columns equal the signature's, we feed the
native model the float64 array directly. Everything else goes through pyfunc. A test checks
that both paths give identical answers on the same rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn import config_context as sklearn_config

from routing.serving.validation import Batch, Schema

# Above this many rows XGBoost's own threading pays for itself.
XGB_SINGLE_THREAD_MAX_ROWS = 1000


@dataclass
class LoadedModel:
    """One model version in memory: the pyfunc, and the native fast path when it is safe."""

    name: str
    version: int
    pyfunc: Any
    schema: Schema | None
    kind: str = "pyfunc"  # "sklearn", "xgboost" or "pyfunc"
    native: Any = None
    booster: Any = None
    xgb_objective: str = ""
    origin: str = "mlflow"  # where the weights came from: "mlflow" or the local "cache"


def _to_list(result: Any) -> list[Any]:
    if isinstance(result, np.ndarray):
        return result.tolist()
    if hasattr(result, "to_dict"):  # pandas DataFrame / Series from a pyfunc model
        import pandas as pd

        if isinstance(result, pd.DataFrame):
            return result.to_dict(orient="records")
        return result.tolist()
    return list(result)


def _xgb_predict(model: LoadedModel, array: np.ndarray) -> np.ndarray:
    if len(array) > XGB_SINGLE_THREAD_MAX_ROWS:
        return model.native.predict(array)
    raw = model.booster.inplace_predict(array)
    objective = model.xgb_objective
    if objective.startswith("binary:"):
        # XGBClassifier.predict thresholds the probability at 0.5 the same way.
        return (raw > 0.5).astype(np.int64)
    if objective.startswith("multi:"):
        return raw.argmax(axis=1) if raw.ndim == 2 else raw.astype(np.int64)
    return raw


def predict(model: LoadedModel, batch: Batch) -> list[Any]:
    """Predictions for every row of ``batch``, as JSON-ready Python values."""
    if batch.array is not None and not batch.params:
        if model.kind == "sklearn":
            # Validation already refused non-finite values and the parameters were checked at
            # fit time: skipping both checks saves a fifth of a one-row call.
            with sklearn_config(assume_finite=True, skip_parameter_validation=True):
                return model.native.predict(batch.array).tolist()
        if model.kind == "xgboost":
            return _xgb_predict(model, batch.array).tolist()
    return predict_pyfunc(model, batch)


def predict_pyfunc(model: LoadedModel, batch: Batch) -> list[Any]:
    """The reference path: MLflow's own pyfunc with its pandas conversion and schema enforcement."""
    import pandas as pd

    frame = pd.DataFrame(batch.rows, columns=batch.columns or None)
    return _to_list(model.pyfunc.predict(frame, params=batch.params or None))
