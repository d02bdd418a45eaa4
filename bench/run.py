"""``make bench``: /predict against MLServer and ``mlflow models serve`` on the same models and rows.

Starts a throw-away MLflow tracking server, trains the two demo models (scikit-learn pipeline and
XGBoost, breast-cancer data), configures a control-plane database with one endpoint per model and
a token without rate limit, and starts three kinds of servers on the same machine:

- ours: gunicorn with ``BENCH_WORKERS`` workers (``KeepAliveWorker``), ``POST /predict/<model>``;
- Seldon's MLServer 1.7.1 with its scikit-learn and XGBoost runtimes, one process, V2 protocol
  (``POST /v2/models/<model>/infer``), installed by the bench into ``var/bench/mlserver-venv``
  and serving the same models exported from their MLflow artifacts (see ``mlserver_peer.py``);
- ``mlflow models serve --env-manager local``, ``POST /invocations``.

Before timing anything it checks that every peer answers the bench rows exactly as /predict
does (a wrong peer is worse than none). Then ``wrk`` (one thread, keep-alive, same duration)
drives each with one row and 100-row batches at concurrency 1 and 8. It prints, per server,
requests/s, p50, p99, CPU milliseconds per request and requests/s per busy core, then the ratios
``ours / MLServer`` and ``ours / mlflow``, the raw in-process model call time, and what telemetry
(metrics + prediction log) costs.

The mlflow baseline is mlflow at its best: it runs with ``--workers 1`` (its default) and with our
worker count, and each cell compares against the faster of the two. With more than one worker,
uvicorn binds the socket itself without ``IPPROTO_TCP``, asyncio then never sets ``TCP_NODELAY``
on accepted connections, and every keep-alive response waits ~40 ms for the client's delayed ACK.
Comparing against that stall alone would flatter us.

Nothing is pinned to a CPU: every server and wrk share all the machine's cores.

    BENCH_SECONDS=5 BENCH_WORKERS=2 BENCH_TELEMETRY_ROUNDS=3 .venv/bin/python bench/run.py
    BENCH_ONLY=sklearn:1:1 make bench                  # one cell: model:rows:concurrency
    BENCH_ONLY=xgboost,sklearn::8 BENCH_PEERS=mlserver make bench
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench import memory, report  # noqa: E402
from bench.measure import SECONDS, post_json, say, wrk, wrk_with_cpu  # noqa: E402
from bench.selection import MODELS, Selection  # noqa: E402
from bench.servers import BIN, Servers, Target, bench_rows, scoring_body  # noqa: E402
from tests.mlflow_server import MlflowServer  # noqa: E402

WORKERS = int(os.environ.get("BENCH_WORKERS", "2"))
WORKER_CLASS = os.environ.get("GUNICORN_WORKER_CLASS", "KeepAliveWorker").rsplit(".", 1)[-1]
MLFLOW_WORKER_COUNTS = sorted({1, WORKERS})
SELECTION = Selection.from_env()
# The telemetry comparison belongs to the full run; a subset asks for it explicitly.
TELEMETRY_ROUNDS = int(os.environ.get("BENCH_TELEMETRY_ROUNDS", "3" if SELECTION.full else "0"))
# Model memory with 10 endpoints x 2 variants (bench/memory.py): the full run, or BENCH_MEMORY=1.
MEMORY = os.environ.get("BENCH_MEMORY", "1" if SELECTION.full else "0") == "1"


def load_script(name: str) -> Any:
    spec = importlib.util.spec_from_file_location(f"bench_{name}", REPO / "mlflow" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def setup_controlplane(env: dict[str, str], models: list[str]) -> str:
    """Migrate, sync and configure one endpoint per model in a fresh database; returns a raw token."""
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], env=env, cwd=REPO, check=True)
    code = f"""
from registry.services import registry_sync
from registry.models import ModelVersion
from routing.models import Endpoint, Variant
from routing.governance.tokens import service_token_create
for endpoint in {models!r}:
    model = "bench-" + endpoint
    registry_sync(model_name=model)
    mv = ModelVersion.objects.get(registered_model__name=model, version=1)
    ep = Endpoint.objects.create(name=endpoint, registered_model=mv.registered_model)
    Variant.objects.create(endpoint=ep, name="champion", role="champion", model_version=mv, weight=100)
print(service_token_create(actor="system", name="bench", all_endpoints=True, rate_limit_per_second=0)[1])
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


def prepare(server: MlflowServer, tmp: Path) -> dict[str, str]:
    """Train and register both demo models, configure our database; the servers' environment."""
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
    env["BENCH_TOKEN"] = setup_controlplane(env, list(MODELS))
    import django

    django.setup()
    return env


def raw_call_times(model_uri: str, rows: list[list[float]], columns: list[str]) -> dict[str, Any]:
    """Median in-process time of one call: our fast path and pyfunc.predict, one row."""
    import pandas as pd

    from routing.serving import inference
    from routing.serving.loader import load_version
    from routing.serving.payloads import Payload
    from routing.serving.validation import validate

    name, version = model_uri.removeprefix("models:/").split("/")
    model = load_version(name, int(version), None)
    batch = validate(Payload(columns, rows[:1]), model.schema)
    frame = pd.DataFrame(rows[:1], columns=columns)

    def median(fn: Any, n: int = 300) -> float:
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


def expected_answers(ours: Target, rows: list[list[float]]) -> dict[int, list[Any]]:
    """/predict's answers for the one-row and 100-row bodies: what every peer must answer too."""
    expected = {}
    for batch in (1, 100):
        status, answer = post_json(ours.url, ours.body(rows[:batch]), ours.headers)
        if status != 200:
            raise SystemExit(f"{ours.url} answered {status}: {answer}")
        expected[batch] = ours.answer(answer)
    return expected


def check_answers(target: Target, expected: dict[int, list[Any]], rows: list[list[float]]) -> None:
    """Stop the bench if ``target`` does not answer the bench rows exactly as /predict does."""
    for batch, want in expected.items():
        status, answer = post_json(target.url, target.body(rows[:batch]), target.headers)
        got = target.answer(answer) if status == 200 else None
        if got != want:
            raise SystemExit(
                f"{target.label} answers {batch} rows differently from /predict "
                f"(status {status}): {str(got)[:200]} != {str(want)[:200]}"
            )


def measure(targets: list[Target], cells: list[tuple[int, int]], rows: list, tmp: Path) -> dict:
    """Each cell on each target, back to back, so a neighbour's load hits them alike."""
    results: dict[tuple[int, int], dict[str, dict]] = {}
    for target in targets:  # first requests pay for imports, caches and the allocator's growth
        wrk(target.url, target.body(rows[:100]), target.headers, 8, tmp, seconds=1)
    for batch, conc in cells:
        for target in targets:
            body = target.body(rows[:batch])
            result = wrk_with_cpu(target.proc, target.url, body, target.headers, conc, tmp)
            result["processes"] = target.processes
            results.setdefault((batch, conc), {})[target.label] = result
    return results


def bench_model(model: str, servers: Servers, targets: list[Target], rows: list) -> dict:
    """All selected cells of one model on ours and MLServer, then on ``mlflow models serve``."""
    cells = SELECTION.of(model)
    expected = expected_answers(targets[0], rows)
    for target in targets[1:]:
        check_answers(target, expected, rows)
    results = measure(targets, cells, rows, servers.tmp)
    for workers in MLFLOW_WORKER_COUNTS if "mlflow" in SELECTION.peers else ():
        target = servers.mlflow_serve(model, workers)
        check_answers(target, expected, rows)
        for cell, by_label in measure([target], cells, rows, servers.tmp).items():
            results[cell].update(by_label)
        servers.stop(target.proc)
    for (batch, conc), by_label in results.items():
        line = ", ".join(f"{label} {r['rps']:.0f}" for label, r in by_label.items())
        say(f"{model} rows={batch} c={conc} req/s: {line}")
    return results


def bench_all(servers: Servers) -> tuple[report.Results, dict[str, dict]]:
    columns, rows = bench_rows()
    gunicorn, port = servers.gunicorn("gunicorn.log")
    mlserver = servers.mlserver(SELECTION.models) if "mlserver" in SELECTION.peers else None
    results, raw = {}, {}
    for model in SELECTION.models:
        raw[model] = raw_call_times(f"models:/bench-{model}/1", rows, columns)
        targets = [servers.ours(gunicorn, port, model, WORKERS), *([mlserver(model)] if mlserver else [])]
        for cell, by_label in bench_model(model, servers, targets, rows).items():
            results[(model, *cell)] = by_label
    return results, raw


def telemetry_cost(servers: Servers) -> None:
    """One-row requests at concurrency 8, metrics + prediction log on and off (issue 5's budget).

    Two fresh servers (the one that served the batches may still be writing their log rows)
    run side by side and take turns, ``TELEMETRY_ROUNDS`` each, after a warm-up, so a
    neighbour's load hits both alike; the medians of requests/s and CPU per request are compared.
    """
    rows = bench_rows()[1]
    sides = {
        "on": servers.ours(*servers.gunicorn("gunicorn-telemetry-on.log"), "sklearn", WORKERS),
        "off": servers.ours(
            *servers.gunicorn("gunicorn-telemetry-off.log", CONTROLPLANE_TELEMETRY="false"),
            "sklearn",
            WORKERS,
        ),
    }
    body = scoring_body(rows[:1])
    for target in sides.values():
        wrk(target.url, body, target.headers, 8, servers.tmp)
    runs: dict[str, list[dict]] = {"on": [], "off": []}
    for _ in range(TELEMETRY_ROUNDS):
        for side, target in sides.items():
            runs[side].append(wrk_with_cpu(target.proc, target.url, body, target.headers, 8, servers.tmp))
    servers.stop_all()
    report.print_telemetry(runs, TELEMETRY_ROUNDS)


def header() -> str:
    peers = []
    if "mlserver" in SELECTION.peers:
        peers.append("MLServer 1.7.1 one process (parallel_workers 0)")
    if "mlflow" in SELECTION.peers:
        counts = " and ".join(map(str, MLFLOW_WORKER_COUNTS))
        peers.append(f"mlflow models serve --workers {counts} (the faster is the baseline)")
    return (
        f"ours: gunicorn, {WORKERS} workers ({WORKER_CLASS}); {'; '.join(peers) or 'no peers'}; "
        f"peers with OMP_NUM_THREADS=1 (XGBoost on one thread, as our fast path up to 1,000 rows); "
        f"no CPU pinning: servers and wrk share all {os.cpu_count()} cores; "
        f"wrk -t1, keep-alive, {SECONDS}s per run; load average {os.getloadavg()[0]:.1f} at the end "
        f"(above ~1 the machine was shared and the figures are low)"
    )


def main() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="bench-"))
    server = MlflowServer(tmp / "mlflow").start()
    servers: Servers | None = None
    finished = False
    try:
        servers = Servers(prepare(server, tmp), tmp)
        results, raw = bench_all(servers)
        report.print_tables(results, raw, header())
        servers.stop_all()
        if TELEMETRY_ROUNDS > 0:
            telemetry_cost(servers)
        if MEMORY:
            memory.memory_report(servers, WORKERS)
        finished = True
    finally:
        if servers is not None:
            servers.stop_all()
        server.stop()
        if finished:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            say(f"servers' logs kept in {tmp}")


if __name__ == "__main__":
    main()
