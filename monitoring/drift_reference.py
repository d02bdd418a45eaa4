"""The drift reference a model is compared against: logged at training, or bootstrapped live.

Training code calls ``log_drift_reference(x_train, train_predictions, run_id=...)`` right after
logging the model; the reference goes into the run as ``drift_reference.json``. A version
registered without one gets a reference built from its first live predictions instead
(``kind = "live_bootstrap"``), which the admin and the metrics label as such: it can only show
drift *since the version went live*, not drift from training.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from monitoring import drift

ARTIFACT_FILE = "drift_reference.json"
KIND_TRAINING = "training"
KIND_LIVE_BOOTSTRAP = "live_bootstrap"


def _columns(x: Any) -> dict[str, list[Any]]:
    """Columns of a pandas DataFrame, a mapping of columns, or a list of row dicts."""
    if hasattr(x, "to_dict") and hasattr(x, "columns"):
        return {str(c): x[c].tolist() for c in x.columns}
    if isinstance(x, Mapping):
        return {str(k): list(v) for k, v in x.items()}
    columns: dict[str, list[Any]] = {}
    for row in x:
        for key in row:
            columns.setdefault(str(key), [])
    for row in x:
        for key, values in columns.items():
            values.append(row.get(key))
    return columns


def _predictions(predictions: Any) -> list[Any]:
    if hasattr(predictions, "tolist"):  # numpy array, pandas Series
        return predictions.tolist()
    if hasattr(predictions, "to_numpy"):  # pandas DataFrame
        return predictions.to_numpy().tolist()
    return list(predictions)


def build_training_reference(x_train: Any, predictions: Any, *, bins: int = drift.DEFAULT_BINS) -> dict:
    """The reference for a model from its training inputs and its predictions on them."""
    return drift.build_reference(_columns(x_train), _predictions(predictions), kind=KIND_TRAINING, bins=bins)


def build_live_reference(
    rows: Sequence[Mapping[str, Any]], predictions: Sequence[Any], *, bins: int = drift.DEFAULT_BINS
) -> dict:
    """A stand-in reference from a version's first live predictions (no training reference)."""
    return drift.build_reference(_columns(rows), list(predictions), kind=KIND_LIVE_BOOTSTRAP, bins=bins)


def log_drift_reference(x_train: Any, predictions: Any, *, run_id: str) -> dict:
    """Log the training reference as ``drift_reference.json`` in the MLflow run ``run_id``."""
    import mlflow

    reference = build_training_reference(x_train, predictions)
    mlflow.log_dict(reference, ARTIFACT_FILE, run_id=run_id)
    return reference
