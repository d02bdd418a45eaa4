"""``make bench-batch`` (part of ``make bench``): a 1,000,000-row batch job next to ``mlflow models predict``.

Starts a throw-away MLflow server, trains the demo scikit-learn model (breast-cancer columns),
and runs the control plane as ``make run`` does: gunicorn plus one Celery worker (concurrency 1)
on the embedded filesystem broker, a SQLite database, files under ``var/``. Then:

1. generates ``BENCH_BATCH_ROWS`` (1,000,000) rows of the demo's 30 columns (real rows plus
   noise), and a copy with 100 bad rows planted (text, empty cells, ``inf``);
2. submits the clean file to ``POST /predict/bench/jobs`` and times submit -> succeeded;
   the worker's peak RSS is read from ``/proc/<pid>/status`` (VmHWM) of every worker process;
3. runs ``mlflow models predict -m models:/bench-batch/1 -i FILE -o OUT -t csv --env-manager
   local`` on the same clean file (it refuses a file with bad rows as a whole), timed with its
   peak RSS (``getrusage`` of the child);
4. submits the file with bad rows and checks the 100 rows land in the errors file;
5. checks 2,000 random result rows against ``pyfunc.predict`` on the same rows.

Prints rows per second and peak memory for both and the ratio; writes ``var/bench/batch.json``.

    BENCH_BATCH_ROWS=200000 .venv/bin/python bench/batch.py
"""

from __future__ import annotations

import csv
import importlib.util
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.mlflow_server import MlflowServer, free_port, wait_http  # noqa: E402

ROWS = int(os.environ.get("BENCH_BATCH_ROWS", "1000000"))
BAD_ROWS = 100
BIN = Path(sys.executable).parent


def say(text: str) -> None:
    print(f"[bench-batch {time.strftime('%H:%M:%S')}] {text}", flush=True)


def load_script(name: str) -> Any:
    spec = importlib.util.spec_from_file_location(f"bench_{name}", REPO / "mlflow" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_files(tmp: Path) -> tuple[Path, Path, list[str], set[int]]:
    """The clean file and the file with bad rows (same rows otherwise); the planted row ids."""
    import numpy as np
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer(as_frame=True).data
    columns = list(data.columns)
    rng = np.random.default_rng(13)
    base = data.to_numpy()
    picks = base[rng.integers(0, len(base), ROWS)]
    rows = picks * rng.normal(1.0, 0.02, picks.shape)
    clean, dirty = tmp / "rows.csv", tmp / "rows-with-bad.csv"
    bad = set(random.Random(13).sample(range(ROWS), BAD_ROWS))
    plants = ["not-a-number", "", "inf"]
    with open(clean, "w", newline="") as c, open(dirty, "w", newline="") as d:
        cw, dw = csv.writer(c, lineterminator="\n"), csv.writer(d, lineterminator="\n")
        cw.writerow(columns)
        dw.writerow(columns)
        for start in range(0, ROWS, 50_000):
            block = [[f"{v:.6g}" for v in r] for r in rows[start : start + 50_000]]
            cw.writerows(block)
            for i, r in enumerate(block, start):
                if i in bad:
                    r = list(r)
                    r[i % len(columns)] = plants[i % len(plants)]
                dw.writerow(r)
    return clean, dirty, columns, bad


def setup(tmp: Path, server: MlflowServer) -> tuple[dict[str, str], str]:
    env = dict(
        os.environ,
        MLFLOW_TRACKING_URI=server.url,
        DJANGO_SECRET_KEY="bench-only-secret",
        CONTROLPLANE_VAR_DIR=str(tmp / "var"),
        DJANGO_SETTINGS_MODULE="controlplane.settings",
        PROMETHEUS_MULTIPROC_DIR=str(tmp / "prom"),
        GUNICORN_WORKERS="1",
        CELERY_BROKER_URL="filesystem://",
        LOG_LEVEL="WARNING",
    )
    env.pop("MLFLOW_REGISTRY_URI", None)
    (tmp / "prom").mkdir()
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], env=env, cwd=REPO, check=True)
    code = """
from registry.services import registry_sync
from routing.governance.services import endpoint_create
from routing.governance.tokens import service_token_create
registry_sync(model_name="bench-batch")
endpoint_create(actor="system", name="bench", model_name="bench-batch", champion_version=1, reason="bench")
print(service_token_create(actor="system", name="bench", all_endpoints=True, scopes=["batch"])[1])
"""
    done = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", code],
        env=env,
        cwd=REPO,
        check=True,
        capture_output=True,
        text=True,
    )
    return env, done.stdout.strip().splitlines()[-1]


def start(cmd: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    with open(log, "ab") as out:
        return subprocess.Popen(
            cmd, env=env, cwd=REPO, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )


def peak_rss_mb(pgid: int) -> float:
    """The largest VmHWM (peak resident set) among the processes of a process group."""
    peak = 0
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            text = status.read_text()
            if os.getpgid(int(status.parent.name)) != pgid:
                continue
        except (OSError, ProcessLookupError):
            continue
        for line in text.splitlines():
            if line.startswith("VmHWM:"):
                peak = max(peak, int(line.split()[1]))
    return peak / 1024


def call(url: str, token: str, method: str = "GET", data: Any = None, headers: dict | None = None) -> Any:
    req = urllib.request.Request(  # noqa: S310 - our own http URL
        url, data=data, method=method, headers={"Authorization": f"Bearer {token}", **(headers or {})}
    )
    with urllib.request.urlopen(req, timeout=600) as response:  # noqa: S310
        body = response.read()
    return (
        json.loads(body) if response.headers.get("Content-Type", "").startswith("application/json") else body
    )


def run_job(base: str, token: str, path: Path, worker: subprocess.Popen) -> dict[str, Any]:
    started = time.monotonic()
    with open(path, "rb") as fh:
        submitted = call(
            f"{base}/predict/bench/jobs", token, "POST", fh,
            {"Content-Type": "text/csv", "Content-Length": str(path.stat().st_size)},
        )  # fmt: skip
    uploaded = time.monotonic() - started
    while True:
        status = call(base + submitted["status_url"], token)
        if status["status"] in ("succeeded", "failed", "cancelled"):
            break
        if worker.poll() is not None:
            raise RuntimeError("the worker died")
        time.sleep(0.5)
    seconds = time.monotonic() - started
    say(
        f"{path.name}: {status['status']} in {seconds:.1f} s (upload {uploaded:.1f} s), {status['rows']} rows, {status['errors']} errors"
    )
    if status["status"] != "succeeded":
        raise RuntimeError(f"job {status}")
    return {
        "status": status,
        "seconds": seconds,
        "upload_seconds": uploaded,
        "rows_per_second": ROWS / seconds,
    }


def mlflow_predict(env: dict[str, str], path: Path, out: Path) -> dict[str, Any]:
    cmd = [str(BIN / "mlflow"), "models", "predict", "-m", "models:/bench-batch/1", "-i", str(path),
           "-o", str(out), "-t", "csv", "--env-manager", "local"]  # fmt: skip
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    started = time.monotonic()
    subprocess.run(cmd, env=env, check=True, capture_output=True)
    seconds = time.monotonic() - started
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    say(f"mlflow models predict: {seconds:.1f} s")
    return {"seconds": seconds, "rows_per_second": ROWS / seconds, "peak_rss_mb": max(peak, before) / 1024}


def sample_matches(base: str, token: str, status: dict, clean: Path, columns: list[str]) -> int:
    import mlflow.pyfunc
    import pandas as pd

    results = call(base + status["results_url"], token).decode().splitlines()[1:]
    assert len(results) == ROWS, f"{len(results)} result rows for {ROWS}"
    picks = sorted(random.Random(7).sample(range(ROWS), 2000))
    wanted = {i + 1 for i in picks}  # file lines (0 is the header)
    frame = pd.read_csv(clean, skiprows=lambda i: i != 0 and i not in wanted)
    expected = mlflow.pyfunc.load_model("models:/bench-batch/1").predict(frame[columns])
    got = [results[i].split(",", 1) for i in picks]
    mismatches = sum(
        int(r) != i or int(p) != int(e) for (r, p), i, e in zip(got, picks, expected, strict=True)
    )
    say(f"sample of {len(picks)} rows against pyfunc.predict: {mismatches} mismatches")
    return mismatches


def main() -> None:
    out_dir = REPO / "var" / "bench"
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="bench-batch-") as name:
        tmp = Path(name)
        server = MlflowServer(tmp / "mlflow").start()
        procs: list[subprocess.Popen] = []
        try:
            os.environ["MLFLOW_TRACKING_URI"] = server.url
            say("training the demo model")
            load_script("train_sklearn").train_and_register("bench-batch")
            say(f"writing {ROWS:,} rows")
            clean, dirty, columns, bad = write_files(tmp)
            env, token = setup(tmp, server)
            port = free_port()
            gunicorn = [str(BIN / "gunicorn"), "-c", str(REPO / "controlplane/gunicorn.conf.py"),
                        "--bind", f"127.0.0.1:{port}", "controlplane.wsgi:application"]  # fmt: skip
            procs.append(start(gunicorn, env, tmp / "gunicorn.log"))
            worker_cmd = [sys.executable, "-m", "celery", "-A", "controlplane", "worker", "--concurrency", "1",
                          "--loglevel", "WARNING", "--without-gossip", "--without-mingle", "--without-heartbeat"]  # fmt: skip
            worker = start(worker_cmd, env, tmp / "worker.log")
            procs.append(worker)
            wait_http(f"http://127.0.0.1:{port}/healthz", 120, procs[0])
            base = f"http://127.0.0.1:{port}"
            ours = run_job(base, token, clean, worker)
            ours["worker_peak_rss_mb"] = peak_rss_mb(worker.pid)
            theirs = mlflow_predict(env, clean, tmp / "mlflow-out.csv")
            mismatches = sample_matches(base, token, ours["status"], clean, columns)
            with_bad = run_job(base, token, dirty, worker)
            errors = call(base + with_bad["status"]["errors_url"], token).decode().splitlines()
            error_rows = sorted(json.loads(e)["row"] for e in errors)
            with_bad["worker_peak_rss_mb"] = peak_rss_mb(worker.pid)
        finally:
            for proc in procs:
                os.killpg(proc.pid, 15)
            for proc in procs:
                proc.wait(timeout=30)
            server.stop()
    result = {
        "rows": ROWS,
        "ours": {k: v for k, v in ours.items() if k != "status"},
        "mlflow_models_predict": theirs,
        "ratio_rows_per_second": ours["rows_per_second"] / theirs["rows_per_second"],
        "sample_mismatches": mismatches,
        "planted_bad_rows_found": error_rows == sorted(bad),
        "with_bad_rows": {k: v for k, v in with_bad.items() if k != "status"},
    }
    (out_dir / "batch.json").write_text(json.dumps(result, indent=2))
    print()
    print(f"{'':28}{'rows/s':>12}{'seconds':>10}{'peak RSS MB':>14}")
    print(
        f"{'ours (job, 1 worker)':28}{ours['rows_per_second']:>12,.0f}{ours['seconds']:>10.1f}{ours['worker_peak_rss_mb']:>14.0f}"
    )
    print(
        f"{'mlflow models predict':28}{theirs['rows_per_second']:>12,.0f}{theirs['seconds']:>10.1f}{theirs['peak_rss_mb']:>14.0f}"
    )
    print(f"ratio ours / mlflow: {result['ratio_rows_per_second']:.2f}x rows/s; sample mismatches: {mismatches}; "
          f"planted bad rows in the errors file: {len(error_rows)}/{BAD_ROWS} ({'exact' if result['planted_bad_rows_found'] else 'MISMATCH'})")  # fmt: skip
    if mismatches or not result["planted_bad_rows_found"]:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
