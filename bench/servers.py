"""The servers the bench starts, each as a ``Target``: ours, MLServer and ``mlflow models serve``."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from bench import mlserver_peer
from bench.measure import say, start, stop
from tests.mlflow_server import free_port, scoring_server_args, wait_http

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
JSON = {"Content-Type": "application/json"}


@cache
def bench_rows() -> tuple[list[str], list[list[float]]]:
    """The breast-cancer rows the models were trained on, columns in signature order."""
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer(as_frame=True).data
    return list(data.columns), data.to_numpy().tolist()


def scoring_body(rows: list[list[float]]) -> str:
    """MLflow scoring JSON, as /predict and ``mlflow models serve`` both take it."""
    return json.dumps({"dataframe_split": {"columns": bench_rows()[0], "data": rows}})


def _predictions(answer: dict[str, Any]) -> list[Any]:
    return answer["predictions"]


@dataclass
class Target:
    """One server answering one model: where to send a batch, how, and where its answer is.

    ``processes`` is how many processes can serve requests at once, for the per-core figures.
    """

    label: str
    proc: subprocess.Popen
    url: str
    processes: int
    headers: dict[str, str] = field(default_factory=lambda: dict(JSON))
    body: Callable[[list[list[float]]], str] = scoring_body
    answer: Callable[[dict[str, Any]], list[Any]] = _predictions


class Servers:
    """Every server the bench started, so a failure anywhere still stops them all."""

    def __init__(self, env: dict[str, str], tmp: Path) -> None:
        self.env, self.tmp, self.procs = env, tmp, []

    def _start(
        self, cmd: list[str], env: dict[str, str], log: str, cwd: Path | None = None
    ) -> subprocess.Popen:
        proc = start(cmd, env, self.tmp / log, cwd=cwd)
        self.procs.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen) -> None:
        stop(proc)
        self.procs.remove(proc)

    def stop_all(self) -> None:
        for proc in list(self.procs):
            self.stop(proc)

    def gunicorn(self, log: str, conf: Path | None = None, **extra_env: str) -> tuple[subprocess.Popen, int]:
        """Our server as ``make run`` starts it (``controlplane/gunicorn.conf.py``), on a free port."""
        port = free_port()
        conf = conf or REPO / "controlplane/gunicorn.conf.py"
        app = "controlplane.wsgi:application"
        cmd = [str(BIN / "gunicorn"), "-c", str(conf), "--bind", f"127.0.0.1:{port}", app]
        proc = self._start(cmd, dict(self.env, **extra_env), log)
        wait_http(f"http://127.0.0.1:{port}/healthz", 120, proc)
        return proc, port

    def ours(self, proc: subprocess.Popen, port: int, model: str, workers: int) -> Target:
        headers = dict(JSON, Authorization=f"Bearer {self.env['BENCH_TOKEN']}")
        return Target("ours", proc, f"http://127.0.0.1:{port}/predict/{model}", workers, headers=headers)

    def mlflow_serve(self, model: str, workers: int) -> Target:
        port = free_port()
        cmd = scoring_server_args(f"models:/bench-{model}/1", port, workers)
        env = dict(self.env, OMP_NUM_THREADS="1")  # XGBoost on one thread, as ours and MLServer
        proc = self._start(cmd, env, f"serve-{model}-{workers}.log")
        wait_http(f"http://127.0.0.1:{port}/ping", 180, proc)
        return Target(f"mlflow {workers}w", proc, f"http://127.0.0.1:{port}/invocations", workers)

    def mlserver(self, models: list[str]) -> Callable[[str], Target]:
        """MLServer serving our exported models (its venv installed on first use); a Target per model."""
        python = mlserver_peer.ensure_venv(say)
        repository = self.tmp / "mlserver"
        mlserver_peer.export_models(repository, **exported_models(self.tmp))
        port = free_port()
        mlserver_peer.write_settings(
            repository, http_port=port, grpc_port=free_port(), metrics_port=free_port()
        )
        cmd = mlserver_peer.command(python, repository)
        proc = self._start(cmd, mlserver_peer.environment(), "mlserver.log", cwd=repository)
        for model in models:
            wait_http(f"http://127.0.0.1:{port}/v2/models/{model}/ready", 180, proc)

        def target(model: str) -> Target:
            url = f"http://127.0.0.1:{port}/v2/models/{model}/infer"
            return Target(
                "mlserver", proc, url, 1, body=mlserver_peer.v2_body, answer=mlserver_peer.predictions
            )

        return target


def exported_models(tmp: Path) -> dict[str, Any]:
    """What MLServer serves: our fast path's scikit-learn object and MLflow's XGBoost booster file."""
    import yaml

    import mlflow
    from routing.serving.loader import load_version

    sklearn_native = load_version("bench-sklearn", 1, None).native
    folder = Path(mlflow.artifacts.download_artifacts("models:/bench-xgboost/1", dst_path=str(tmp / "xgb")))
    data = yaml.safe_load((folder / "MLmodel").read_text())["flavors"]["xgboost"]["data"]
    return {"sklearn_native": sklearn_native, "xgboost_file": folder / data}
