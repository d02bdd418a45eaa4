"""Example: train a scikit-learn pipeline and register it in MLflow, the way we expect you to.

Copy this file for your own model. What matters for the control plane:
- log a *signature* (the /predict endpoint validates every request against it),
- log an *input example* (MLflow checks the model loads and predicts on it),
- register the model under the name your endpoint serves.

    MLFLOW_TRACKING_URI=http://127.0.0.1:5000 python mlflow/train_sklearn.py --name demo-model
"""

from __future__ import annotations

import argparse

import pandas as pd
from mlflow.models import infer_signature
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, roc_auc_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

import mlflow

EXPERIMENT = "controlplane-demo"


def load_data(seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame, pd.Series, pd.Series]:
    """Breast-cancer data (ships with scikit-learn): 30 numeric features, binary label."""
    data = load_breast_cancer(as_frame=True)
    return train_test_split(data.data, data.target, test_size=0.25, random_state=seed)


def train_and_register(name: str, *, c: float = 1.0, seed: int = 0) -> str:
    """Train, evaluate, log and register one version; returns the version number."""
    x_train, x_val, y_train, y_val = load_data(seed)
    model = Pipeline([("scale", StandardScaler()), ("clf", LogisticRegression(C=c, max_iter=1000))]).fit(
        x_train, y_train
    )
    params = {"model": "logistic_regression", "C": c, "seed": seed}
    return log_and_register(name, model, mlflow.sklearn, params, (x_train, x_val, y_val))


def log_and_register(
    name: str, model: object, flavor: object, params: dict, data: tuple[pd.DataFrame, pd.DataFrame, pd.Series]
) -> str:
    """Log params, validation metrics, the model with its signature and input example, and the
    drift reference, in one run; register the model under ``name``. Shared by both examples."""
    x_train, x_val, y_val = data
    mlflow.set_experiment(EXPERIMENT)
    with mlflow.start_run(run_name=f"{name}-{params['model']}") as run:
        mlflow.log_params(params)
        mlflow.log_metrics(
            {
                "val_auc": float(roc_auc_score(y_val, model.predict_proba(x_val)[:, 1])),
                "val_accuracy": float(accuracy_score(y_val, model.predict(x_val))),
            }
        )
        train_predictions = model.predict(x_train)
        info = flavor.log_model(
            model,
            name="model",
            signature=infer_signature(x_train, train_predictions),
            input_example=x_train.head(3),
            registered_model_name=name,
        )
        _log_drift_reference(x_train, train_predictions, run.info.run_id)
    return str(info.registered_model_version)


def _log_drift_reference(x_train: pd.DataFrame, predictions: object, run_id: str) -> None:
    """Log the training distribution the control plane compares live traffic against."""
    try:
        from monitoring.drift_reference import log_drift_reference
    except ImportError:  # running outside the control plane's checkout
        return
    log_drift_reference(x_train, predictions, run_id=run_id)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", default="demo-model", help="registered model name")
    parser.add_argument("--C", type=float, default=1.0, help="inverse regularisation strength")
    args = parser.parse_args()
    print(f"registered {args.name} version {train_and_register(args.name, c=args.C)}")


if __name__ == "__main__":
    main()
