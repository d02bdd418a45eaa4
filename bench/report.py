"""What ``make bench`` prints: a row per server and cell, the ratios, issue 16's targets, telemetry.

Requests/s per busy core: a server's requests/s divided by the cores it can keep busy in that
cell, ``min(concurrency, its processes, cores)``: at concurrency 1 that is 1 for everyone (one
request in flight); at concurrency 8 ours counts ``BENCH_WORKERS`` gunicorn workers, MLServer its
one process, ``mlflow models serve`` its worker count. CPU ms per request is measured instead of
counted (user + system time of the server's processes over the run): ``1000 / cpu ms`` is what
one fully busy core would serve.
"""

from __future__ import annotations

import os
from typing import Any

Results = dict[tuple[str, int, int], dict[str, dict[str, Any]]]


def busy_cores(result: dict[str, Any], conc: int) -> int:
    return max(1, min(conc, result["processes"], os.cpu_count() or 1))


def per_core(result: dict[str, Any], conc: int) -> float:
    return result["rps"] / busy_cores(result, conc)


def best_mlflow(by_label: dict[str, dict]) -> tuple[str, dict] | None:
    mlflow = [(label, r) for label, r in by_label.items() if label.startswith("mlflow")]
    return max(mlflow, key=lambda item: item[1]["rps"]) if mlflow else None


def print_tables(results: Results, raw: dict[str, dict], header: str) -> None:
    print()
    print(header)
    print("req/s/core = req/s / min(concurrency, processes, cores); cpu ms = server CPU time per request")
    head = (
        f"{'model':<8}{'rows':>5}{'conc':>5}  {'server':<10}{'procs':>6}{'req/s':>8}{'p50 ms':>8}"
        f"{'p99 ms':>8}{'cpu ms':>8}{'req/s/core':>11}{'errors':>7}"
    )
    print(head)
    print("-" * len(head))
    for (model, batch, conc), by_label in results.items():
        first = True
        for label, r in by_label.items():
            cell = f"{model:<8}{batch:>5}{conc:>5}" if first else " " * 18
            first = False
            print(
                f"{cell}  {label:<10}{r['processes']:>6}{r['rps']:>8.0f}{r['p50']:>8.2f}{r['p99']:>8.2f}"
                f"{r['cpu_ms']:>8.2f}{per_core(r, conc):>11.0f}{r['errors']:>7}"
            )
    print_ratios(results)
    print_targets(results)
    print_raw(results, raw)


def _ratios(ours: dict, theirs: dict, conc: int) -> str:
    return (
        f"{ours['rps'] / theirs['rps']:>7.2f}{ours['p50'] / theirs['p50']:>7.2f}"
        f"{per_core(ours, conc) / per_core(theirs, conc):>9.2f}"
    )


def print_ratios(results: Results) -> None:
    has_mlserver = any("mlserver" in by_label for by_label in results.values())
    has_mlflow = any(best_mlflow(by_label) for by_label in results.values())
    if not (has_mlserver or has_mlflow):
        return
    print()
    print("ratios ours / peer: req/s and per core above 1 = ours faster; p50 below 1 = ours faster")
    cols = f"{'req/s':>7}{'p50':>7}{'per core':>9}"
    head = f"{'model':<8}{'rows':>5}{'conc':>5}"
    head += f" | {'vs MLServer':^23}" if has_mlserver else ""
    head += f" | {'vs mlflow (best)':^23}" if has_mlflow else ""
    print(head)
    print(f"{'':<18}" + (f" | {cols}" if has_mlserver else "") + (f" | {cols}" if has_mlflow else ""))
    for (model, batch, conc), by_label in results.items():
        ours, line = by_label["ours"], f"{model:<8}{batch:>5}{conc:>5}"
        if has_mlserver:
            line += f" | {_ratios(ours, by_label['mlserver'], conc)}" if "mlserver" in by_label else " |"
        best = best_mlflow(by_label)
        if has_mlflow and best:
            line += f" | {_ratios(ours, best[1], conc)}  ({best[0]})"
        print(line)


def _target(what: str, value: float, goal: str, met: bool) -> str:
    return f"{what} {value:.2f}x {goal}" + (" ok" if met else " NOT MET")


def print_targets(results: Results) -> None:
    """Issue 16's acceptance, one-row cells: where we stand, met or not."""
    lines = []
    for model in dict.fromkeys(model for model, _, _ in results):
        one, eight = results.get((model, 1, 1), {}), results.get((model, 1, 8), {})
        checks = []
        if "mlserver" in one:
            rps = one["ours"]["rps"] / one["mlserver"]["rps"]
            p50 = one["ours"]["p50"] / one["mlserver"]["p50"]
            checks.append(_target("c=1 req/s", rps, "MLServer (>= 1.0)", rps >= 1))
            checks.append(_target("c=1 p50", p50, "MLServer (<= 1.0)", p50 <= 1))
        if "mlserver" in eight:
            rps = eight["ours"]["rps"] / eight["mlserver"]["rps"]
            checks.append(_target("c=8 req/s", rps, "MLServer (>= 2.0)", rps >= 2))
        best = best_mlflow(eight)
        if best:
            rps = eight["ours"]["rps"] / best[1]["rps"]
            checks.append(_target("c=8 req/s", rps, "mlflow at its best (>= 10)", rps >= 10))
        if checks:
            lines.append(f"  {model}, one row: " + "; ".join(checks))
    if lines:
        print()
        print("issue 16 targets:")
        print("\n".join(lines))


def print_raw(results: Results, raw: dict[str, dict]) -> None:
    print()
    for model, call in raw.items():
        print(
            f"raw in-process call, one row, bench-{model} (CPU time): fast path ({call['kind']}) "
            f"{call['fast_ms']:.3f} ms, pyfunc.predict {call['pyfunc_ms']:.3f} ms"
        )
        if (model, 1, 1) in results:
            ours = results[model, 1, 1]["ours"]
            print(
                f"  /predict p50 at concurrency 1 is {ours['p50'] - call['fast_ms']:.2f} ms above the raw call "
                f"(target: at most 1 ms)"
            )


def print_telemetry(runs: dict[str, list[dict]], rounds: int) -> None:
    def median(side: str, key: str) -> float:
        values = sorted(r[key] for r in runs[side])
        return values[len(values) // 2]

    rps_on, rps_off = median("on", "rps"), median("off", "rps")
    cpu_on, cpu_off = median("on", "cpu_ms"), median("off", "cpu_ms")
    print(
        f"telemetry (metrics + prediction log), sklearn one row c=8, median of {rounds} alternating runs: "
        f"on {rps_on:.0f} req/s at {cpu_on * 1000:.0f} us CPU/request, off {rps_off:.0f} req/s at "
        f"{cpu_off * 1000:.0f} us CPU/request; cost {1 - rps_on / rps_off:.1%} of throughput, "
        f"{cpu_on / cpu_off - 1:.1%} more CPU per request (budget 10%)"
    )
