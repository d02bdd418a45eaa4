"""Which cells and peers a bench run measures: ``BENCH_ONLY`` and ``BENCH_PEERS``.

``BENCH_ONLY`` is a comma-separated list of ``model:rows:concurrency`` patterns; a missing or
``*`` part matches everything (``sklearn:1:1``, ``xgboost``, ``*:100``, ``sklearn::8``).
``BENCH_PEERS`` is a comma-separated subset of ``mlserver,mlflow`` (``none`` for ours alone).
Unset, both mean everything, which is what ``make bench`` reports.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

MODELS = ("sklearn", "xgboost")
ROWS = (1, 100)
CONCURRENCY = (1, 8)
PEERS = ("mlserver", "mlflow")

Cell = tuple[str, int, int]


def _matches(part: str, value: object) -> bool:
    return part in ("", "*") or part == str(value)


def _parse_cells(spec: str) -> list[Cell]:
    every = [(m, r, c) for m in MODELS for r in ROWS for c in CONCURRENCY]
    if not spec.strip():
        return every
    chosen: list[Cell] = []
    for pattern in spec.split(","):
        parts = [*pattern.strip().split(":"), "", ""][:3]
        if len(pattern.split(":")) > 3:
            raise SystemExit(f"BENCH_ONLY: {pattern!r} is not model:rows:concurrency")
        hits = [cell for cell in every if all(_matches(p, v) for p, v in zip(parts, cell, strict=True))]
        if not hits:
            raise SystemExit(
                f"BENCH_ONLY: {pattern!r} matches no cell (models {MODELS}, rows {ROWS}, "
                f"concurrency {CONCURRENCY})"
            )
        chosen += [cell for cell in hits if cell not in chosen]
    return chosen


def _parse_peers(spec: str) -> tuple[str, ...]:
    if not spec.strip():
        return PEERS
    if spec.strip() == "none":
        return ()
    peers = tuple(p.strip() for p in spec.split(","))
    unknown = [p for p in peers if p not in PEERS]
    if unknown:
        raise SystemExit(f"BENCH_PEERS: unknown {unknown}; choose from {PEERS} or 'none'")
    return peers


@dataclass(frozen=True)
class Selection:
    """The cells and peers of this run, and whether it is the full ``make bench``."""

    cells: tuple[Cell, ...]
    peers: tuple[str, ...]
    full: bool

    @classmethod
    def from_env(cls) -> Selection:
        only, peers = os.environ.get("BENCH_ONLY", ""), os.environ.get("BENCH_PEERS", "")
        return cls(tuple(_parse_cells(only)), _parse_peers(peers), not only.strip() and not peers.strip())

    @property
    def models(self) -> list[str]:
        return [m for m in MODELS if any(cell[0] == m for cell in self.cells)]

    def of(self, model: str) -> list[tuple[int, int]]:
        return [(rows, conc) for m, rows, conc in self.cells if m == model]
