"""``make bench-hostile``: time per KB of parsing and validating hostile /predict bodies, 1 KB to 5 MB.

What a token holder can send costs the worker CPU and memory before any model runs: the body is
parsed (``routing.serving.payloads``) and checked against the signature
(``routing.serving.validation``). Both must be linear in the body's size, so that the body limit
(``PREDICT_MAX_BODY_BYTES``, 5 MB) bounds the cost of one request. For each hostile shape this
prints the answer the view would give, the time, and microseconds per KB at each size: a flat
column is linear; a column that doubles with each quadrupling of size is quadratic.

No server, no database, no MLflow: the functions the view calls, on one 30-column numeric
signature (the demo model's shape). A size whose projected time (from the previous size, assuming
the worst growth seen so far) exceeds ``HOSTILE_BUDGET_SECONDS`` is skipped and said so, which is
what quadratic code gets on its larger sizes.

    .venv/bin/python bench/hostile_input.py            # HOSTILE_BUDGET_SECONDS=5 HOSTILE_REPEAT=3
"""

from __future__ import annotations

import inspect
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402

from routing.serving import payloads, validation  # noqa: E402
from routing.serving.errors import ServingError  # noqa: E402

BUDGET = float(os.environ.get("HOSTILE_BUDGET_SECONDS", "5"))
REPEAT = int(os.environ.get("HOSTILE_REPEAT", "3"))
KB = 1024
SIZES = [1 * KB, 4 * KB, 16 * KB, 64 * KB, 256 * KB, 1024 * KB, 5 * 1024 * KB - 64]
COLUMNS = [f"f{i}" for i in range(30)]
SCHEMA = validation.Schema.from_signature([{"name": c, "type": "double"} for c in COLUMNS])


def _fill(head: str, item: Callable[[int], str], tail: str, size: int, sep: str = ",") -> bytes:
    """``head item(0),item(1),... tail`` with as many items as fit in ``size`` bytes."""
    parts, used, i = [], len(head) + len(tail), 0
    while True:
        piece = item(i)
        if used + len(piece) + len(sep) > size:
            break
        parts.append(piece)
        used += len(piece) + len(sep)
        i += 1
    return (head + sep.join(parts) + tail).encode()


def distinct_keys(size: int) -> bytes:
    return _fill('{"dataframe_records": [', lambda i: f'{{"k{i}": 1}}', "]}", size)


def duplicate_columns(size: int) -> bytes:
    n = max(1, (size - 60) // 8)
    return json.dumps({"dataframe_split": {"columns": ["a"] * n, "data": [[1] * n]}}).encode()[:size]


def deep_nesting(size: int) -> bytes:
    cell = "[" * 200 + "1" + "]" * 200
    return _fill('{"instances": [', lambda i: cell, "]}", size)


def huge_numbers(size: int) -> bytes:
    row = "[" + ",".join(["9" * 400] * 30) + "]"
    head = '{"dataframe_split": {"columns": ' + json.dumps(COLUMNS) + ', "data": ['
    return _fill(head, lambda i: row, "]}}", size)


def many_tiny_rows(size: int) -> bytes:
    return _fill('{"instances": [', lambda i: "[0]", "]}", size)


def wide_rows(size: int) -> bytes:
    n = max(1, (size - 60) // 16)
    columns = [f"c{i}" for i in range(n)]
    return json.dumps({"dataframe_split": {"columns": columns, "data": [[0] * n]}}).encode()[:size]


def good_rows(size: int) -> bytes:
    row = "[" + ",".join(["17.99"] * 30) + "]"
    head = '{"dataframe_split": {"columns": ' + json.dumps(COLUMNS) + ', "data": ['
    return _fill(head, lambda i: row, "]}}", size)


SHAPES = {
    "distinct_keys": distinct_keys,
    "duplicate_columns": duplicate_columns,
    "deep_nesting": deep_nesting,
    "huge_numbers": huge_numbers,
    "many_tiny_rows": many_tiny_rows,
    "wide_rows": wide_rows,
    "good_rows (reference)": good_rows,
}


def _parse(body: bytes) -> payloads.Payload:
    # Limits are passed when this checkout's parser takes them (it did not before issue 10).
    if "limits" in inspect.signature(payloads.parse).parameters:
        return payloads.parse(body, "application/json", limits=payloads.Limits.from_settings(settings))
    return payloads.parse(body, "application/json")


def score_input(body: bytes) -> str:
    """What the view does with a body before choosing a model: the HTTP status it would answer."""
    try:
        payload = _parse(body)
        validation.validate(payload, SCHEMA, settings.PREDICT_MAX_ROWS)
    except ServingError as exc:
        return f"{exc.status} {exc.code}"
    except Exception as exc:
        return f"500 {type(exc).__name__}"
    return "200"


def measure(body: bytes) -> tuple[str, float]:
    best, outcome = float("inf"), ""
    for _ in range(REPEAT):
        started = time.perf_counter()
        outcome = score_input(body)
        best = min(best, time.perf_counter() - started)
    return outcome, best


def run_shape(name: str, make: Callable[[int], bytes]) -> list[float]:
    print(f"\n{name}")
    print(f"  {'size':>8}  {'answer':<28} {'ms':>9} {'us/KB':>9}")
    per_kb: list[float] = []
    previous: tuple[int, float] | None = None
    growth = 1.0
    for size in SIZES:
        if previous is not None:
            projected = previous[1] * (size / previous[0]) ** growth
            if projected > BUDGET:
                print(f"  {size // KB:>6}KB  skipped: projected {projected:.0f} s > {BUDGET:.0f} s budget")
                continue
        body = make(size)
        outcome, seconds = measure(body)
        kb = len(body) / KB
        per_kb.append(seconds * 1e6 / kb)
        print(f"  {kb:>6.0f}KB  {outcome:<28} {seconds * 1000:>9.2f} {per_kb[-1]:>9.2f}")
        if previous is not None and previous[1] > 0.002:
            growth = max(1.0, min(2.0, _exponent(previous, (size, seconds))))
        previous = (size, seconds)
    return per_kb


def _exponent(a: tuple[int, float], b: tuple[int, float]) -> float:
    import math

    return math.log(max(b[1], 1e-9) / max(a[1], 1e-9)) / math.log(b[0] / a[0])


def main() -> None:
    print(f"parse + validate, best of {REPEAT}, 30-column double signature, budget {BUDGET:.0f} s per size")
    summary = []
    for name, make in SHAPES.items():
        per_kb = run_shape(name, make)
        tail = per_kb[2:]  # from 16 KB: below that the fixed cost of a call dominates
        spread = max(tail) / min(tail) if len(tail) >= 2 and min(tail) > 0 else float("nan")
        summary.append((name, len(per_kb), spread))
    print("\nmax/min us per KB from 16 KB on (1.0 = perfectly linear; sizes measured of 7)")
    for name, measured, spread in summary:
        print(f"  {name:<24} {spread:>6.1f}   {measured}/7")


if __name__ == "__main__":
    main()
