"""Where the time of one /predict goes, stage by stage, inside a real gunicorn worker.

Sets up what ``make bench`` sets up (tracking server, the two demo models, our database), starts
ours with ONE worker under ``bench/stage_timer.py`` (our gunicorn settings plus a timer
around each stage), drives it with wrk and prints, per request, each stage's thread CPU time
(user + system: the socket system calls count) and wall time, nested as the calls nest. A
profiler's sampling shows the same picture less exactly at ~1 ms per request; this counts.

    .venv/bin/python bench/stages.py                       # sklearn, one row, concurrency 1
    BENCH_ONLY=xgboost:100:1 BENCH_SECONDS=20 .venv/bin/python bench/stages.py

Each timer costs ~1-2 us (two clock reads are system calls), a few dozen per request: the
stages add up to a bit more than the same server without timers.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("BENCH_ONLY", "sklearn:1:1")
os.environ.setdefault("BENCH_PEERS", "none")

from bench.measure import SECONDS, say, wrk, wrk_with_cpu  # noqa: E402
from bench.run import SELECTION, prepare  # noqa: E402
from bench.servers import Servers, bench_rows  # noqa: E402
from bench.stage_timer import STAGES  # noqa: E402
from tests.mlflow_server import MlflowServer  # noqa: E402


def snapshot(worker: int, folder: Path) -> dict:
    before = set(folder.iterdir())
    os.kill(worker, signal.SIGUSR2)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        new = set(folder.iterdir()) - before
        if new:
            time.sleep(0.2)  # let the worker finish writing
            return json.loads(new.pop().read_text())
        time.sleep(0.05)
    raise TimeoutError("the worker wrote no stage totals")


def print_stages(first: dict, last: dict, outside: dict) -> None:
    requests = last["totals"][STAGES[1][1]][0] - first["totals"].get(STAGES[1][1], [0])[0]
    print(f"\n{requests} requests; per request: calls, thread CPU us (user + system), wall us")
    for depth, label, _, _ in STAGES:
        if label in last["missing"]:
            print(f"  {'  ' * depth}{label}: not found (the code moved?)")
            continue
        calls, cpu, wall = (
            b - a for a, b in zip(first["totals"].get(label, [0, 0, 0]), last["totals"][label], strict=True)
        )
        name = f"{'  ' * depth}{label}"
        print(f"  {name:<58}{calls / requests:5.2f}{cpu / requests * 1e6:9.1f}{wall / requests * 1e6:9.1f}")
    print(
        f"outside view, same run: {outside['rps']:.0f} req/s, p50 {outside['p50']:.2f} ms, "
        f"server CPU {outside['cpu_ms'] * 1000:.0f} us/request (master + worker, with timers)"
    )


def main() -> None:
    ((model, batch, conc),) = SELECTION.cells[:1]
    tmp = Path(tempfile.mkdtemp(prefix="bench-stages-"))
    server = MlflowServer(tmp / "mlflow").start()
    servers = None
    try:
        servers = Servers(prepare(server, tmp), tmp)
        folder = tmp / "stages"
        folder.mkdir()
        proc, port = servers.gunicorn(
            "gunicorn.log",
            REPO / "bench" / "stage_timer.py",
            GUNICORN_WORKERS="1",
            BENCH_STAGES_DIR=str(folder),
        )
        target = servers.ours(proc, port, model, 1)
        body = target.body(bench_rows()[1][:batch])
        (worker,) = (
            int(pid) for pid in Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
        )
        say(f"{model}, {batch} rows, concurrency {conc}, one worker, {SECONDS}s")
        wrk(target.url, body, target.headers, conc, tmp, seconds=2)
        first = snapshot(worker, folder)
        outside = wrk_with_cpu(proc, target.url, body, target.headers, conc, tmp)
        print_stages(first, snapshot(worker, folder), outside)
    finally:
        if servers is not None:
            servers.stop_all()
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
