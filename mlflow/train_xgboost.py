"""Example: train an XGBoost classifier and register it in MLflow.

Same data and the same signature as ``train_sklearn.py``, so it can run as a challenger on
the same endpoint.

    MLFLOW_TRACKING_URI=http://127.0.0.1:5000 python mlflow/train_xgboost.py --name demo-model
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import mlflow
import xgboost as xgb
from mlflow.models import infer_signature
from sklearn.metrics import accuracy_score, roc_auc_score

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_sklearn import EXPERIMENT, load_data  # noqa: E402


def train_and_register(name: str, *, n_estimators: int = 100, seed: int = 0) -> str:
    """Train, evaluate, log and register one version; returns the version number."""
    x_train, x_val, y_train, y_val = load_data(seed)
    model = xgb.XGBClassifier(
        n_estimators=n_estimators, max_depth=4, learning_rate=0.1, random_state=seed, n_jobs=1
    ).fit(x_train, y_train)
    mlflow.set_experiment(EXPERIMENT)
    with mlflow.start_run(run_name=f"{name}-xgboost") as run:
        mlflow.log_params({"model": "xgboost", "n_estimators": n_estimators, "seed": seed})
        proba = model.predict_proba(x_val)[:, 1]
        mlflow.log_metrics(
            {
                "val_auc": float(roc_auc_score(y_val, proba)),
                "val_accuracy": float(accuracy_score(y_val, model.predict(x_val))),
            }
        )
        signature = infer_signature(x_train, model.predict(x_train))
        info = mlflow.xgboost.log_model(
            model,
            name="model",
            signature=signature,
            input_example=x_train.head(3),
            registered_model_name=name,
        )
        try:
            from monitoring.drift_reference import log_drift_reference
        except ImportError:
            pass
        else:
            log_drift_reference(x_train, model.predict(x_train), run_id=run.info.run_id)
    return str(info.registered_model_version)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", default="demo-model", help="registered model name")
    parser.add_argument("--n-estimators", type=int, default=100)
    args = parser.parse_args()
    version = train_and_register(args.name, n_estimators=args.n_estimators)
    print(f"registered {args.name} version {version}")


if __name__ == "__main__":
    main()
