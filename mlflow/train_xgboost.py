"""Example: train an XGBoost classifier and register it in MLflow.

Same data and the same signature as ``train_sklearn.py``, so it can run as a challenger on
the same endpoint.

    MLFLOW_TRACKING_URI=http://127.0.0.1:5000 python mlflow/train_xgboost.py --name demo-model
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import xgboost as xgb

import mlflow

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_sklearn import load_data, log_and_register


def train_and_register(name: str, *, n_estimators: int = 100, seed: int = 0) -> str:
    """Train, evaluate, log and register one version; returns the version number."""
    x_train, x_val, y_train, y_val = load_data(seed)
    model = xgb.XGBClassifier(
        n_estimators=n_estimators, max_depth=4, learning_rate=0.1, random_state=seed, n_jobs=1
    ).fit(x_train, y_train)
    params = {"model": "xgboost", "n_estimators": n_estimators, "seed": seed}
    return log_and_register(name, model, mlflow.xgboost, params, (x_train, x_val, y_val))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", default="demo-model", help="registered model name")
    parser.add_argument("--n-estimators", type=int, default=100)
    args = parser.parse_args()
    version = train_and_register(args.name, n_estimators=args.n_estimators)
    print(f"registered {args.name} version {version}")


if __name__ == "__main__":
    main()
