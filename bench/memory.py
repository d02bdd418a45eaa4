"""Model memory: 10 endpoints x 2 variants across gunicorn workers, with and without the master's preload.

Part of ``make bench`` (after the throughput tables; ``BENCH_MEMORY=0`` skips it), using the same
tracking server and database. It registers ten more versions of each demo model (same artifacts,
new version numbers, so every worker loads twenty distinct versions), creates endpoints
``mem-1`` .. ``mem-10`` with a scikit-learn champion and an XGBoost challenger each, pauses the
throughput endpoints, and starts ours three times:

- one worker, no preload: what a single worker holds (the "single-worker RSS");
- ``BENCH_WORKERS`` workers, ``SERVING_PRELOAD_MODELS=false``: each worker loads its own copies;
- ``BENCH_WORKERS`` workers, preload on: the master loads them before it forks (copy-on-write).

Each waits until every worker reports the twenty versions loaded, serves every variant of every
endpoint a few times (a model in use gets its reference counts written, which unshares pages),
and is read from ``/proc/<pid>/smaps_rollup``: RSS (pages mapped, shared ones counted in every
process), PSS (each shared page divided among the processes sharing it: the sum over processes is
the real footprint) and USS (private pages: what stopping that process would free).
"""

from __future__ import annotations

import json
import time
import urllib.request
from pathlib import Path
from typing import Any

from bench.measure import say
from bench.servers import Servers, bench_rows, scoring_body

ENDPOINTS = 10
MODELS = ("bench-sklearn", "bench-xgboost")
REQUESTS_PER_VARIANT = 20


def configure() -> str:
    """Versions 2..11 of both demo models, endpoints mem-1..mem-10; a token that may force a variant."""
    from mlflow.tracking import MlflowClient

    from registry.models import ModelVersion
    from registry.services import registry_sync
    from routing.governance.tokens import service_token_create
    from routing.models import Endpoint, Variant

    mlflow = MlflowClient()
    for model in MODELS:
        first = mlflow.get_model_version(model, "1")
        for _ in range(ENDPOINTS):  # versions 2..11: the same artifacts, loaded as distinct versions
            model_id = first.source.removeprefix("models:/")  # MLflow 3: a logged model's source
            mlflow.create_model_version(model, first.source, run_id=first.run_id, model_id=model_id)
        registry_sync(model_name=model)
    Endpoint.objects.filter(name__in=["sklearn", "xgboost"]).update(is_active=False)
    for n in range(1, ENDPOINTS + 1):
        champion, challenger = (
            ModelVersion.objects.get(registered_model__name=model, version=n + 1) for model in MODELS
        )
        endpoint = Endpoint.objects.create(name=f"mem-{n}", registered_model=champion.registered_model)
        Variant.objects.create(
            endpoint=endpoint, name="champion", role="champion", model_version=champion, weight=90
        )
        Variant.objects.create(
            endpoint=endpoint, name="challenger", role="challenger", model_version=challenger, weight=10
        )
    _, raw = service_token_create(
        actor="system", name="bench-memory", all_endpoints=True, can_override=True, rate_limit_per_second=0
    )
    return raw


def _workers(pid: int) -> list[int]:
    return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def _wait_loaded(pids: list[int], versions: int, timeout: float = 300) -> None:
    from routing.models import WorkerStatus

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = {row.pid: len(row.loaded) for row in WorkerStatus.objects.filter(pid__in=pids)}
        if len(rows) == len(pids) and all(n >= versions for n in rows.values()):
            return
        time.sleep(0.5)
    raise TimeoutError(f"workers {pids} did not all load {versions} versions within {timeout} s")


def _exercise(port: int, token: str) -> None:
    """Every variant of every endpoint, a few times, each on a new connection (any worker)."""
    body = scoring_body(bench_rows()[1][:5]).encode()
    for n in range(1, ENDPOINTS + 1):
        for variant in ("champion", "challenger"):
            for _ in range(REQUESTS_PER_VARIANT):
                request = urllib.request.Request(
                    f"http://127.0.0.1:{port}/predict/mem-{n}",
                    data=body,
                    headers={
                        "Authorization": f"Bearer {token}",
                        "Content-Type": "application/json",
                        "X-Variant": variant,
                        "Connection": "close",
                    },
                )
                with urllib.request.urlopen(request, timeout=30) as answer:  # noqa: S310
                    assert json.loads(answer.read())["variant"] == variant


def smaps(pid: int) -> dict[str, float]:
    """RSS, PSS and USS (private clean + dirty) of one process, in MiB."""
    fields: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        name, value, *_ = line.split()
        fields[name.rstrip(":")] = int(value)
    uss = fields["Private_Clean"] + fields["Private_Dirty"]
    return {"rss": fields["Rss"] / 1024, "pss": fields["Pss"] / 1024, "uss": uss / 1024}


def measure(servers: Servers, token: str, workers: int, preload: bool) -> dict[str, Any]:
    proc, port = servers.gunicorn(
        f"gunicorn-memory-{workers}-{preload}.log",
        GUNICORN_WORKERS=str(workers),
        SERVING_PRELOAD_MODELS=str(preload).lower(),
    )
    try:
        pids = _workers(proc.pid)
        _wait_loaded(pids, 2 * ENDPOINTS)
        _exercise(port, token)
        return {"master": smaps(proc.pid), "workers": [smaps(pid) for pid in _workers(proc.pid)]}
    finally:
        servers.stop(proc)


def memory_report(servers: Servers, workers: int) -> None:
    say(f"model memory: {ENDPOINTS} endpoints x 2 variants")
    token = configure()
    runs = {
        "1 worker, no preload": measure(servers, token, 1, False),
        f"{workers} workers, no preload": measure(servers, token, workers, False),
        f"{workers} workers, preload (copy-on-write)": measure(servers, token, workers, True),
    }
    print_memory(runs, workers)


def print_memory(runs: dict[str, dict[str, Any]], workers: int) -> None:
    print()
    print(
        f"model memory: {ENDPOINTS} endpoints x 2 variants ({2 * ENDPOINTS} versions: scikit-learn pipeline "
        f"champions, XGBoost challengers), after {REQUESTS_PER_VARIANT} requests per variant; MiB"
    )
    head = (
        f"{'':<40}{'worker RSS':>11}{'PSS':>7}{'USS':>7}{'master RSS':>11}{'PSS':>7}"
        f"{'sum RSS':>9}{'total PSS':>10}"
    )
    print(head)
    print("-" * len(head))
    for label, run in runs.items():
        ws, master = run["workers"], run["master"]
        avg = {k: sum(w[k] for w in ws) / len(ws) for k in ("rss", "pss", "uss")}
        total_pss = master["pss"] + sum(w["pss"] for w in ws)
        sum_rss = master["rss"] + sum(w["rss"] for w in ws)
        print(
            f"{label:<40}{avg['rss']:>11.0f}{avg['pss']:>7.0f}{avg['uss']:>7.0f}{master['rss']:>11.0f}"
            f"{master['pss']:>7.0f}{sum_rss:>9.0f}{total_pss:>10.0f}"
        )
    single = next(iter(runs.values()))
    single_rss = single["workers"][0]["rss"]
    shared = list(runs.values())[-1]
    total = shared["master"]["pss"] + sum(w["pss"] for w in shared["workers"])
    verdict = "ok" if total < workers * single_rss else "NOT MET"
    print(
        f"issue 16 target: total PSS with preload (master + {workers} workers) {total:.0f} MiB vs "
        f"{workers} x single-worker RSS {workers * single_rss:.0f} MiB: {total / (workers * single_rss):.2f}x {verdict}"
    )
