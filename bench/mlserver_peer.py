"""Seldon's MLServer as a peer of /predict in ``make bench``: its venv, the model files, the server.

MLServer lives in its own virtualenv, ``var/bench/mlserver-venv``, created on the first bench and
reused while ``bench/mlserver-requirements.txt`` and the versions below stay the same; ``.venv`` is
never touched. scikit-learn, xgboost, numpy and joblib there are pinned to the versions of the
interpreter running the bench, so a model exported here loads and answers the same there.

It serves the models the bench trained, exported from their MLflow artifacts:
- the scikit-learn pipeline as ``model.joblib`` for mlserver-sklearn. It is the very object our
  fast path calls (``routing.serving.loader``), column names stripped, so neither side pays scikit-learn's
  per-call feature-name warning;
- the XGBoost model as the booster file MLflow logged (``model.ubj``), which mlserver-xgboost
  loads into an ``XGBClassifier``.

One process (``parallel_workers: 0``: inference runs in the process that serves HTTP), V2
protocol, access log off (``debug: false``), like ours; its Prometheus metrics stay on as ours do.
Its default inference pool (``parallel_workers: 1``) does not start here: each pool worker dies
at start with "There is no current event loop in thread 'MainThread'" and is restarted in a loop.

``OMP_NUM_THREADS=1``: our fast path calls XGBoost with one thread up to 1,000 rows. With
XGBoost's default (all cores) and the machine shared with wrk and a neighbour, MLServer's one-row
XGBoost fell from ~400 to ~26 requests/s (measured): OpenMP threads spinning against each other.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
VENV = REPO / "var" / "bench" / "mlserver-venv"
REQUIREMENTS = Path(__file__).with_name("mlserver-requirements.txt")
NO_DEPS = ["mlserver-xgboost==1.7.1"]
# Distributions whose versions must match ours for the exported files to load the same.
MATCHED = ("scikit-learn", "xgboost-cpu", "numpy", "joblib")
# Our endpoint name -> the MLServer runtime that serves the same model.
RUNTIMES = {"sklearn": "mlserver_sklearn.SKLearnModel", "xgboost": "mlserver_xgboost.XGBoostModel"}


def _pins() -> list[str]:
    return [f"{dist}=={version(dist)}" for dist in MATCHED]


def ensure_venv(say: Any) -> Path:
    """The MLServer virtualenv, installed once (about 40 s with a warm pip cache); its python."""
    python = VENV / "bin" / "python"
    stamp = VENV / ".installed"
    wanted = hashlib.sha256((REQUIREMENTS.read_text() + " ".join(_pins() + NO_DEPS)).encode()).hexdigest()
    if stamp.exists() and stamp.read_text() == wanted and python.exists():
        return python
    say(f"installing MLServer into {VENV.relative_to(REPO)} (once)")
    shutil.rmtree(VENV, ignore_errors=True)
    VENV.parent.mkdir(parents=True, exist_ok=True)
    pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    for step in (
        [sys.executable, "-m", "venv", str(VENV)],
        [*pip, "-r", str(REQUIREMENTS), *_pins()],
        [*pip, "--no-deps", *NO_DEPS],
        [str(python), "-c", "import mlserver_sklearn, mlserver_xgboost"],
    ):
        done = subprocess.run(step, capture_output=True, text=True)
        if done.returncode != 0:  # pip's output only when it matters
            raise SystemExit(f"MLServer install failed: {' '.join(step)}\n{done.stdout}{done.stderr}")
    stamp.write_text(wanted)
    return python


def export_models(repository: Path, *, sklearn_native: Any, xgboost_file: Path) -> None:
    """Write an MLServer model repository: one folder per model with its model-settings.json."""
    import joblib

    files = {"sklearn": "model.joblib", "xgboost": f"model{xgboost_file.suffix}"}
    for name, runtime in RUNTIMES.items():
        folder = repository / name
        folder.mkdir(parents=True, exist_ok=True)
        settings = {"name": name, "implementation": runtime, "parameters": {"uri": f"./{files[name]}"}}
        (folder / "model-settings.json").write_text(json.dumps(settings))
    joblib.dump(sklearn_native, repository / "sklearn" / files["sklearn"])
    shutil.copy(xgboost_file, repository / "xgboost" / files["xgboost"])


def write_settings(repository: Path, *, http_port: int, grpc_port: int, metrics_port: int) -> None:
    settings = {
        "debug": False,  # True (the default) writes an access-log line per request
        "parallel_workers": 0,
        "host": "127.0.0.1",
        "http_port": http_port,
        "grpc_port": grpc_port,
        "metrics_port": metrics_port,
    }
    (repository / "settings.json").write_text(json.dumps(settings))


def command(python: Path, repository: Path) -> list[str]:
    return [str(python.with_name("mlserver")), "start", str(repository)]


def environment() -> dict[str, str]:
    """A clean environment: nothing of ours (Django, MLflow, Prometheus directories) leaks in."""
    keep = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR")
    return {**{k: os.environ[k] for k in keep if k in os.environ}, "OMP_NUM_THREADS": "1"}


def v2_body(rows: list[list[float]]) -> str:
    """One FP64 tensor of shape [rows, features]: the V2 protocol's plain way to send a batch."""
    flat = [value for row in rows for value in row]
    tensor = {"name": "input-0", "shape": [len(rows), len(rows[0])], "datatype": "FP64", "data": flat}
    return json.dumps({"inputs": [tensor]})


def predictions(answer: dict[str, Any]) -> list[Any]:
    """The ``predict`` output of a V2 response, as a flat list like /predict's ``predictions``."""
    (output,) = answer["outputs"]
    return list(output["data"])
