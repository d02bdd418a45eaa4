"""``make bench``: /predict against ``mlflow models serve`` on the same model, workers and load tool.

Starts a throw-away MLflow tracking server, trains the two demo models (scikit-learn pipeline and
XGBoost, breast-cancer data), configures a control-plane database with one endpoint per model and
a token without rate limit, then for each model starts ``mlflow models serve --env-manager local``
and our gunicorn with the same number of workers, and drives both with ``wrk`` at one row and
100-row batches, concurrency 1 and 8. Prints requests/s, p50 and p99 for both and the ratios,
plus the raw in-process model call time.

    BENCH_SECONDS=5 BENCH_WORKERS=2 .venv/bin/python bench/run.py
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

from tests.mlflow_server import MlflowServer, free_port, wait_http  # noqa: E402

SECONDS = int(os.environ.get("BENCH_SECONDS", "5"))
WORKERS = int(os.environ.get("BENCH_WORKERS", "2"))
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
        times = []
        for _ in range(n):
            t = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t)
        return sorted(times)[n // 2] * 1000

    return {
        "fast_ms": median(lambda: inference.predict(model, batch)),
        "pyfunc_ms": median(lambda: model.pyfunc.predict(frame), 100),
        "kind": model.kind,
    }


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

        port = free_port()
        gunicorn = start(
            [
                str(BIN / "gunicorn"),
                "-c",
                str(REPO / "controlplane/gunicorn.conf.py"),
                "--bind",
                f"127.0.0.1:{port}",
                "controlplane.wsgi:application",
            ],
            env,
            tmp / "gunicorn.log",
        )
        procs.append(gunicorn)
        wait_http(f"http://127.0.0.1:{port}/healthz", 120, gunicorn)
        results = []
        for endpoint, model in (("sk", "bench-sklearn"), ("xgb", "bench-xgboost")):
            mport = free_port()
            serve = start(
                [
                    str(BIN / "mlflow"),
                    "models",
                    "serve",
                    "-m",
                    f"models:/{model}/1",
                    "--env-manager",
                    "local",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(mport),
                    "--workers",
                    str(WORKERS),
                ],
                env,
                tmp / f"serve-{endpoint}.log",
            )
            procs.append(serve)
            wait_http(f"http://127.0.0.1:{mport}/ping", 180, serve)
            raw = raw_call_times(f"models:/{model}/1", rows, columns)
            for batch in (1, 100):
                body = json.dumps({"dataframe_split": {"columns": columns, "data": rows[:batch]}})
                for conc in (1, 8):
                    theirs = wrk(
                        f"http://127.0.0.1:{mport}/invocations",
                        body,
                        {"Content-Type": "application/json"},
                        conc,
                        tmp,
                    )
                    ours = wrk(
                        f"http://127.0.0.1:{port}/predict/{endpoint}",
                        body,
                        {"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
                        conc,
                        tmp,
                    )
                    results.append((model, batch, conc, theirs, ours, raw))
                    say(
                        f"{model} rows={batch} c={conc}: mlflow {theirs['rps']:.0f} req/s, ours {ours['rps']:.0f} req/s"
                    )
            stop(serve)
            procs.remove(serve)
        report(results)
        telemetry_cost(env, columns, rows, token, tmp, gunicorn, port)
    finally:
        for proc in procs:
            stop(proc)
        server.stop()


def telemetry_cost(
    env: dict[str, str],
    columns: list[str],
    rows: list,
    token: str,
    tmp: Path,
    on: subprocess.Popen,
    port: int,
) -> None:
    """One-row requests at concurrency 8 with metrics + prediction log on, then off (issue 5's budget)."""
    body = json.dumps({"dataframe_split": {"columns": columns, "data": rows[:1]}})
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}
    with_telemetry = wrk(f"http://127.0.0.1:{port}/predict/sk", body, headers, 8, tmp)
    stop(on)
    off_port = free_port()
    off = start(
        [
            str(BIN / "gunicorn"),
            "-c",
            str(REPO / "controlplane/gunicorn.conf.py"),
            "--bind",
            f"127.0.0.1:{off_port}",
            "controlplane.wsgi:application",
        ],
        dict(env, CONTROLPLANE_TELEMETRY="false"),
        tmp / "gunicorn-telemetry-off.log",
    )
    try:
        wait_http(f"http://127.0.0.1:{off_port}/healthz", 120, off)
        without = wrk(f"http://127.0.0.1:{off_port}/predict/sk", body, headers, 8, tmp)
    finally:
        stop(off)
    cost = 1 - with_telemetry["rps"] / without["rps"] if without["rps"] else float("nan")
    print(
        f"telemetry (metrics + prediction log), sklearn one row c=8: on {with_telemetry['rps']:.0f} req/s, "
        f"off {without['rps']:.0f} req/s, cost {cost:.1%} of throughput (budget 10%)"
    )


def report(results: list) -> None:
    print()
    print(f"workers={WORKERS} cores={os.cpu_count()} duration={SECONDS}s per run, wrk -t1")
    head = (
        f"{'model':<14}{'rows':>5}{'conc':>5} | {'mlflow rps':>10}{'p50 ms':>8}{'p99 ms':>8} | "
        f"{'ours rps':>9}{'p50 ms':>8}{'p99 ms':>8}{'errors':>7} | {'rps x':>6}{'p50 x':>7}"
    )
    print(head)
    print("-" * len(head))
    for model, batch, conc, theirs, ours, _ in results:
        print(
            f"{model:<14}{batch:>5}{conc:>5} | {theirs['rps']:>10.0f}{theirs['p50']:>8.2f}{theirs['p99']:>8.2f} | "
            f"{ours['rps']:>9.0f}{ours['p50']:>8.2f}{ours['p99']:>8.2f}{ours['errors']:>7} | "
            f"{ours['rps'] / theirs['rps']:>6.1f}{theirs['p50'] / max(ours['p50'], 1e-6):>7.1f}"
        )
    print()
    seen = set()
    for model, *_, raw in results:
        if model not in seen:
            seen.add(model)
            print(
                f"raw in-process call, one row, {model}: fast path ({raw['kind']}) {raw['fast_ms']:.3f} ms, "
                f"pyfunc.predict {raw['pyfunc_ms']:.3f} ms"
            )


if __name__ == "__main__":
    main()
