"""``make bench``: /predict against ``mlflow models serve`` on the same model, workers and load tool.

Starts a throw-away MLflow tracking server, trains the two demo models (scikit-learn pipeline and
XGBoost, breast-cancer data), configures a control-plane database with one endpoint per model and
a token without rate limit, then for each model starts ``mlflow models serve --env-manager local``
and our gunicorn, and drives both with ``wrk`` at one row and 100-row batches, concurrency 1 and 8.
Prints requests/s, p50 and p99 for both and the ratios, our CPU time per request (robust when
the machine is shared), the raw in-process model call time, and what telemetry costs.

The baseline is MLflow at its best: it runs with ``--workers 1`` (its default) and with our
worker count, and each cell compares against the faster of the two. With more than one worker,
uvicorn binds the socket itself without ``IPPROTO_TCP``, asyncio then never sets
``TCP_NODELAY`` on accepted connections, and every keep-alive response waits ~40 ms for the
client's delayed ACK (measured: ~19 req/s, p50 52 ms at concurrency 1, against ~120 req/s and
7 ms with one worker). Comparing against that stall alone would flatter us.

    BENCH_SECONDS=5 BENCH_WORKERS=2 BENCH_TELEMETRY_ROUNDS=3 .venv/bin/python bench/run.py
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.mlflow_server import MlflowServer, free_port, scoring_server_args, wait_http  # noqa: E402

SECONDS = int(os.environ.get("BENCH_SECONDS", "5"))
WORKERS = int(os.environ.get("BENCH_WORKERS", "2"))
TELEMETRY_ROUNDS = int(os.environ.get("BENCH_TELEMETRY_ROUNDS", "3"))
MLFLOW_WORKER_COUNTS = sorted({1, WORKERS})
WRK = shutil.which("wrk") or "/usr/bin/wrk"
BIN = Path(sys.executable).parent


def say(msg: str) -> None:
    print(f"[bench] {msg}", flush=True)


def load_script(name: str):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", REPO / "mlflow" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def start(cmd: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    with open(log, "wb") as out:
        return subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def stop(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def setup_controlplane(env: dict[str, str], models: dict[str, str]) -> str:
    """Migrate, sync and configure endpoints in a fresh database; returns a raw token."""
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], env=env, cwd=REPO, check=True)
    code = f"""
from registry.services import registry_sync
from registry.models import ModelVersion
from routing.models import Endpoint, Variant
from routing.tokens import service_token_create
for endpoint, model in {models!r}.items():
    registry_sync(model_name=model)
    mv = ModelVersion.objects.get(registered_model__name=model, version=1)
    ep = Endpoint.objects.create(name=endpoint, registered_model=mv.registered_model)
    Variant.objects.create(endpoint=ep, name="champion", role="champion", model_version=mv, weight=100)
print(service_token_create(name="bench", all_endpoints=True, rate_limit_per_second=0)[1])
"""
    out = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", code],
        env=env,
        cwd=REPO,
        check=True,
        capture_output=True,
        text=True,
    )
    return out.stdout.strip().splitlines()[-1]


def cpu_seconds(proc: subprocess.Popen) -> float:
    """User + system CPU time of a gunicorn master and its live workers (Linux /proc)."""
    tick = os.sysconf("SC_CLK_TCK")
    pids = [proc.pid]
    children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children")
    if children.exists():
        pids += [int(pid) for pid in children.read_text().split()]
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        except FileNotFoundError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
    return total / tick


def wrk(url: str, body: str, headers: dict[str, str], concurrency: int, tmp: Path) -> dict[str, float]:
    script = tmp / "post.lua"
    lines = ['wrk.method = "POST"', f"wrk.body = {json.dumps(body)}"]
    lines += [f"wrk.headers[{json.dumps(k)}] = {json.dumps(v)}" for k, v in headers.items()]
    script.write_text("\n".join(lines) + "\n")
    out = subprocess.run(
        [WRK, "-t1", f"-c{concurrency}", f"-d{SECONDS}s", "--latency", "-s", str(script), url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    return {
        "rps": rps,
        "requests": int(re.search(r"(\d+) requests in", out).group(1)),
        "p50": _ms(re.search(r"50%\s+([\d.]+\w+)", out).group(1)),
        "p99": _ms(re.search(r"99%\s+([\d.]+\w+)", out).group(1)),
        "errors": int(non2xx.group(1)) if non2xx else 0,
    }


def _ms(text: str) -> float:
    value, unit = re.match(r"([\d.]+)(\w+)", text).groups()
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


def raw_call_times(model_uri: str, rows: list[list[float]], columns: list[str]) -> dict[str, float]:
    """Median in-process time of one call: our fast path and pyfunc.predict, one row."""
    import pandas as pd

    from routing import inference
    from routing.loader import load_version
    from routing.payloads import Payload
    from routing.validation import validate

    name, version = model_uri.removeprefix("models:/").split("/")
    model = load_version(name, int(version), None)
    batch = validate(Payload(columns, rows[:1]), model.schema)
    frame = pd.DataFrame(rows[:1], columns=columns)

    def median(fn, n: int = 300) -> float:
        # CPU time of this thread: what the call costs, whatever else the machine is doing.
        times = []
        for _ in range(n):
            t = time.thread_time()
            fn()
            times.append(time.thread_time() - t)
        return sorted(times)[n // 2] * 1000

    return {
        "fast_ms": median(lambda: inference.predict(model, batch)),
        "pyfunc_ms": median(lambda: model.pyfunc.predict(frame), 100),
        "kind": model.kind,
    }


def measure_ours(proc: subprocess.Popen, url: str, body: str, headers: dict, conc: int, tmp: Path) -> dict:
    """wrk against our gunicorn, plus its CPU milliseconds per request."""
    before = cpu_seconds(proc)
    result = wrk(url, body, headers, conc, tmp)
    result["cpu_ms"] = (cpu_seconds(proc) - before) * 1000 / max(result["requests"], 1)
    return result


def start_gunicorn(env: dict[str, str], log: Path) -> tuple[subprocess.Popen, int]:
    port = free_port()
    proc = start(
        [
            str(BIN / "gunicorn"),
            "-c",
            str(REPO / "controlplane/gunicorn.conf.py"),
            "--bind",
            f"127.0.0.1:{port}",
            "controlplane.wsgi:application",
        ],
        env,
        log,
    )
    wait_http(f"http://127.0.0.1:{port}/healthz", 120, proc)
    return proc, port


def start_mlflow_serve(
    model: str, workers: int, env: dict[str, str], log: Path
) -> tuple[subprocess.Popen, int]:
    port = free_port()
    proc = start(
        scoring_server_args(f"models:/{model}/1", port, workers),
        env,
        log,
    )
    wait_http(f"http://127.0.0.1:{port}/ping", 180, proc)
    return proc, port


def main() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="bench-"))
    procs: list[subprocess.Popen] = []
    server = MlflowServer(tmp / "mlflow").start()
    try:
        os.environ["MLFLOW_TRACKING_URI"] = server.url
        import mlflow

        mlflow.set_tracking_uri(server.url)
        mlflow.set_registry_uri(server.url)
        say("training the demo models")
        load_script("train_sklearn").train_and_register("bench-sklearn")
        load_script("train_xgboost").train_and_register("bench-xgboost")
        env = dict(
            os.environ,
            MLFLOW_TRACKING_URI=server.url,
            DJANGO_SECRET_KEY="bench-only-secret",
            CONTROLPLANE_VAR_DIR=str(tmp / "var"),
            DJANGO_SETTINGS_MODULE="controlplane.settings",
            PROMETHEUS_MULTIPROC_DIR=str(tmp / "prom"),
            GUNICORN_WORKERS=str(WORKERS),
            LOG_LEVEL="WARNING",
            PATH=str(BIN) + os.pathsep + os.environ.get("PATH", ""),  # mlflow runs `uvicorn` from PATH
        )
        (tmp / "prom").mkdir()
        os.environ.update(
            {k: env[k] for k in ("DJANGO_SECRET_KEY", "CONTROLPLANE_VAR_DIR", "DJANGO_SETTINGS_MODULE")}
        )
        token = setup_controlplane(env, {"sk": "bench-sklearn", "xgb": "bench-xgboost"})
        import django

        django.setup()
        from sklearn.datasets import load_breast_cancer

        data = load_breast_cancer(as_frame=True).data
        columns, rows = list(data.columns), data.to_numpy().tolist()

        gunicorn, port = start_gunicorn(env, tmp / "gunicorn.log")
        procs.append(gunicorn)
        ours_headers = {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}
        results = []
        for endpoint, model in (("sk", "bench-sklearn"), ("xgb", "bench-xgboost")):
            raw = raw_call_times(f"models:/{model}/1", rows, columns)
            cells: dict[tuple[int, int], dict] = {}
            for batch in (1, 100):
                body = json.dumps({"dataframe_split": {"columns": columns, "data": rows[:batch]}})
                for conc in (1, 8):
                    ours = measure_ours(
                        gunicorn, f"http://127.0.0.1:{port}/predict/{endpoint}", body, ours_headers, conc, tmp
                    )
                    cells[batch, conc] = {"ours": ours, "mlflow": {}}
            for workers in MLFLOW_WORKER_COUNTS:
                serve, mport = start_mlflow_serve(
                    model, workers, env, tmp / f"serve-{endpoint}-{workers}.log"
                )
                procs.append(serve)
                for (batch, conc), cell in cells.items():
                    body = json.dumps({"dataframe_split": {"columns": columns, "data": rows[:batch]}})
                    cell["mlflow"][workers] = wrk(
                        f"http://127.0.0.1:{mport}/invocations",
                        body,
                        {"Content-Type": "application/json"},
                        conc,
                        tmp,
                    )
                stop(serve)
                procs.remove(serve)
            for (batch, conc), cell in cells.items():
                results.append((model, batch, conc, cell["mlflow"], cell["ours"], raw))
                best = max(cell["mlflow"].values(), key=lambda r: r["rps"])
                say(
                    f"{model} rows={batch} c={conc}: mlflow {best['rps']:.0f} req/s, ours {cell['ours']['rps']:.0f} req/s"
                )
        report(results)
        stop(gunicorn)
        procs.remove(gunicorn)
        telemetry_cost(env, columns, rows, ours_headers, tmp, procs)
    finally:
        for proc in procs:
            stop(proc)
        server.stop()


def telemetry_cost(
    env: dict[str, str],
    columns: list[str],
    rows: list,
    headers: dict[str, str],
    tmp: Path,
    procs: list[subprocess.Popen],
) -> None:
    """One-row requests at concurrency 8, metrics + prediction log on and off (issue 5's budget).

    Two fresh servers (the one that served the batches may still be writing their log rows)
    run side by side and take turns, ``TELEMETRY_ROUNDS`` each, after a warm-up, so a
    neighbour's load hits both alike; the medians of requests/s and CPU per request are compared.
    """
    body = json.dumps({"dataframe_split": {"columns": columns, "data": rows[:1]}})
    on, port = start_gunicorn(env, tmp / "gunicorn-telemetry-on.log")
    procs.append(on)
    off, off_port = start_gunicorn(
        dict(env, CONTROLPLANE_TELEMETRY="false"), tmp / "gunicorn-telemetry-off.log"
    )
    procs.append(off)
    for warm in (port, off_port):
        wrk(f"http://127.0.0.1:{warm}/predict/sk", body, headers, 8, tmp)
    runs: dict[str, list[dict]] = {"on": [], "off": []}
    for _ in range(TELEMETRY_ROUNDS):
        runs["on"].append(measure_ours(on, f"http://127.0.0.1:{port}/predict/sk", body, headers, 8, tmp))
        runs["off"].append(
            measure_ours(off, f"http://127.0.0.1:{off_port}/predict/sk", body, headers, 8, tmp)
        )

    def median(side: str, key: str) -> float:
        values = sorted(r[key] for r in runs[side])
        return values[len(values) // 2]

    rps_on, rps_off = median("on", "rps"), median("off", "rps")
    cpu_on, cpu_off = median("on", "cpu_ms"), median("off", "cpu_ms")
    print(
        f"telemetry (metrics + prediction log), sklearn one row c=8, median of {TELEMETRY_ROUNDS} alternating runs: "
        f"on {rps_on:.0f} req/s at {cpu_on * 1000:.0f} us CPU/request, off {rps_off:.0f} req/s at "
        f"{cpu_off * 1000:.0f} us CPU/request; cost {1 - rps_on / rps_off:.1%} of throughput, "
        f"{cpu_on / cpu_off - 1:.1%} more CPU per request (budget 10%)"
    )


def report(results: list) -> None:
    print()
    print(
        f"ours: gunicorn, {WORKERS} workers; mlflow models serve with --workers "
        f"{' and '.join(map(str, MLFLOW_WORKER_COUNTS))}, the faster one is the baseline; "
        f"cores={os.cpu_count()}, {SECONDS}s per run, wrk -t1"
    )
    mlflow_cols = "".join(f"{f'mlflow {w}w rps':>15}{'p50 ms':>8}" for w in MLFLOW_WORKER_COUNTS)
    head = (
        f"{'model':<14}{'rows':>5}{'conc':>5} |{mlflow_cols} | "
        f"{'ours rps':>9}{'p50 ms':>8}{'p99 ms':>8}{'cpu ms':>8}{'errors':>7} | {'rps x':>6}{'p50 x':>7}"
    )
    print(head)
    print("-" * len(head))
    for model, batch, conc, theirs, ours, _ in results:
        best = max(theirs.values(), key=lambda r: r["rps"])
        cols = "".join(f"{theirs[w]['rps']:>15.0f}{theirs[w]['p50']:>8.2f}" for w in MLFLOW_WORKER_COUNTS)
        print(
            f"{model:<14}{batch:>5}{conc:>5} |{cols} | "
            f"{ours['rps']:>9.0f}{ours['p50']:>8.2f}{ours['p99']:>8.2f}{ours['cpu_ms']:>8.2f}{ours['errors']:>7} | "
            f"{ours['rps'] / best['rps']:>6.1f}{best['p50'] / max(ours['p50'], 1e-6):>7.1f}"
        )
    print()
    seen = set()
    for model, batch, conc, _, ours, raw in results:
        if model not in seen:
            seen.add(model)
            print(
                f"raw in-process call, one row, {model} (CPU time): fast path ({raw['kind']}) {raw['fast_ms']:.3f} ms, "
                f"pyfunc.predict {raw['pyfunc_ms']:.3f} ms"
            )
        if batch == 1 and conc == 1:
            print(
                f"  /predict p50 at concurrency 1 is {ours['p50'] - raw['fast_ms']:.2f} ms above the raw call "
                f"(target: at most 1 ms)"
            )


if __name__ == "__main__":
    main()
