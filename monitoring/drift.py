"""Drift statistics as pure functions: a reference summary, PSI, KS and chi-square.

A *reference* summarises a distribution compactly enough to log as a JSON artifact with a
model: per numeric column, quantile bin edges, the share of reference values in each bin and
101 percentiles (for KS); per categorical column, category shares. Live values are compared to
it without the training data:

- PSI = sum((live - ref) * ln(live / ref)) over the reference's bins (quantile bins for
  numbers, categories for categoricals), with empty bins floored at ``EPSILON``.
- KS (numeric): scipy's one-sample ``kstest`` of the live values against the reference's
  piecewise-linear CDF through its percentiles.
- chi-square (categorical): scipy's ``chi2_contingency`` on reference vs live counts.

Nothing here touches Django, MLflow or the database.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats

REFERENCE_SCHEMA = 1
DEFAULT_BINS = 10
EPSILON = 1e-4
# PSI rule of thumb: < 0.1 stable, 0.1-0.2 moderate shift, > 0.2 significant shift.
PSI_THRESHOLD = 0.2
# Integer-valued numbers with at most this many distinct values (class labels) are categories.
MAX_CATEGORIES_FOR_INTEGERS = 10
PREDICTION = "__prediction__"


@dataclass(frozen=True)
class DriftStat:
    """The comparison of one column's live values with its reference."""

    feature: str
    kind: str  # numeric | categorical
    psi: float
    n_live: int
    n_reference: int
    ks_stat: float | None = None
    ks_pvalue: float | None = None
    chi2_stat: float | None = None
    chi2_pvalue: float | None = None
    # The live side of the picture: numeric, the share in each reference bin (aligned with the
    # reference's shares); categorical, the share of each live category.
    live_shares: list[float] | dict[str, float] | None = None

    @property
    def drifted(self) -> bool:
        return self.psi > PSI_THRESHOLD


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool)


def _clean(values: Iterable[Any]) -> list[Any]:
    """Drop missing values (None, NaN)."""
    return [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]


def category_key(value: Any) -> str:
    """One spelling per category: 1, 1.0 and numpy's 1 are all "1"."""
    if _is_number(value) and float(value).is_integer():
        return str(int(value))
    return str(value)


def infer_kind(values: Sequence[Any]) -> str:
    """numeric, unless any value is not a number or the values look like a few class labels."""
    if not values or not all(_is_number(v) for v in values):
        return "categorical"
    as_float = np.asarray(values, dtype=float)
    if np.all(np.mod(as_float, 1) == 0) and len(np.unique(as_float)) <= MAX_CATEGORIES_FOR_INTEGERS:
        return "categorical"
    return "numeric"


def summarize_numeric(values: Sequence[float], bins: int = DEFAULT_BINS) -> dict[str, Any]:
    """Quantile bin edges (interior only), the reference share in each bin, and percentiles."""
    arr = np.asarray(values, dtype=float)
    edges = np.unique(np.quantile(arr, np.linspace(0, 1, bins + 1)[1:-1]))
    return {
        "kind": "numeric",
        "n": int(arr.size),
        "edges": edges.tolist(),
        "shares": _bin_shares(arr, edges).tolist(),
        "percentiles": np.quantile(arr, np.linspace(0, 1, 101)).tolist(),
    }


def summarize_categorical(values: Sequence[Any]) -> dict[str, Any]:
    counts = Counter(category_key(v) for v in values)
    total = sum(counts.values())
    return {
        "kind": "categorical",
        "n": total,
        "shares": {k: c / total for k, c in sorted(counts.items())},
    }


def summarize(values: Iterable[Any], bins: int = DEFAULT_BINS) -> dict[str, Any] | None:
    """The reference summary of one column, or None when it has no usable values."""
    clean = _clean(values)
    if not clean:
        return None
    if infer_kind(clean) == "numeric":
        return summarize_numeric(clean, bins)
    return summarize_categorical(clean)


def _bin_shares(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    # Bins are (-inf, e1], (e1, e2], ..., (e_k, inf): right-closed, the same for both sides.
    idx = np.searchsorted(edges, values, side="left")
    counts = np.bincount(idx, minlength=len(edges) + 1)
    return counts / max(values.size, 1)


def psi(reference: Sequence[float], live: Sequence[float]) -> float:
    """Population stability index between two share vectors over the same bins."""
    ref = np.clip(np.asarray(reference, dtype=float), EPSILON, None)
    cur = np.clip(np.asarray(live, dtype=float), EPSILON, None)
    return float(np.sum((cur - ref) * np.log(cur / ref)))


def compare_numeric(feature: str, summary: Mapping[str, Any], live: Sequence[Any]) -> DriftStat | None:
    values = np.asarray([float(v) for v in _clean(live) if _is_number(v)], dtype=float)
    if values.size == 0:
        return None
    edges = np.asarray(summary["edges"], dtype=float)
    live_shares = _bin_shares(values, edges)
    value = psi(summary["shares"], live_shares)
    percentiles = np.asarray(summary["percentiles"], dtype=float)
    probs = np.linspace(0, 1, percentiles.size)

    def reference_cdf(x: np.ndarray) -> np.ndarray:
        return np.interp(x, percentiles, probs, left=0.0, right=1.0)

    ks = stats.kstest(values, reference_cdf)
    return DriftStat(
        feature=feature,
        kind="numeric",
        psi=value,
        n_live=int(values.size),
        n_reference=int(summary["n"]),
        ks_stat=float(ks.statistic),
        ks_pvalue=float(ks.pvalue),
        live_shares=[round(float(x), 6) for x in live_shares],
    )


def compare_categorical(feature: str, summary: Mapping[str, Any], live: Sequence[Any]) -> DriftStat | None:
    live_counts = Counter(category_key(v) for v in _clean(live))
    n_live = sum(live_counts.values())
    if n_live == 0:
        return None
    ref_shares: Mapping[str, float] = summary["shares"]
    categories = sorted(set(ref_shares) | set(live_counts))
    ref_vec = [ref_shares.get(c, 0.0) for c in categories]
    live_vec = [live_counts.get(c, 0) / n_live for c in categories]
    chi2_stat, chi2_p = None, None
    if len(categories) > 1:
        ref_counts = np.asarray(ref_vec) * int(summary["n"])
        table = np.vstack([ref_counts, [live_counts.get(c, 0) for c in categories]])
        chi = stats.chi2_contingency(table[:, table.sum(axis=0) > 0])
        chi2_stat, chi2_p = float(chi.statistic), float(chi.pvalue)
    return DriftStat(
        feature=feature,
        kind="categorical",
        psi=psi(ref_vec, live_vec),
        n_live=n_live,
        n_reference=int(summary["n"]),
        chi2_stat=chi2_stat,
        chi2_pvalue=chi2_p,
        live_shares={c: round(n / n_live, 6) for c, n in sorted(live_counts.items())},
    )


def compare(feature: str, summary: Mapping[str, Any], live: Sequence[Any]) -> DriftStat | None:
    """Compare live values of one column with its reference summary (None: no live values)."""
    if summary["kind"] == "numeric":
        return compare_numeric(feature, summary, live)
    return compare_categorical(feature, summary, live)


def build_reference(
    columns: Mapping[str, Sequence[Any]],
    predictions: Sequence[Any],
    *,
    kind: str,
    bins: int = DEFAULT_BINS,
) -> dict[str, Any]:
    """A JSON-ready reference for every column and for the prediction."""
    features = {}
    for name, values in columns.items():
        summary = summarize(values, bins)
        if summary is not None:
            features[str(name)] = summary
    return {
        "schema": REFERENCE_SCHEMA,
        "kind": kind,
        "features": features,
        "prediction": summarize(flatten_predictions(predictions), bins),
    }


def flatten_predictions(predictions: Iterable[Any]) -> list[Any]:
    """One scalar per prediction: a one-element list or dict is unwrapped; others are skipped."""
    flat: list[Any] = []
    for p in predictions:
        if isinstance(p, Mapping):
            p = next(iter(p.values())) if len(p) == 1 else None
        elif isinstance(p, list | tuple | np.ndarray):
            p = p[0] if len(p) == 1 else None
        if p is not None and not isinstance(p, Mapping | list | tuple):
            flat.append(p.item() if isinstance(p, np.generic) else p)
    return flat


def compare_to_reference(
    reference: Mapping[str, Any], rows: Sequence[Mapping[str, Any]], predictions: Sequence[Any]
) -> list[DriftStat]:
    """Every feature of the reference, then the prediction, compared with live rows."""
    results = []
    for feature, summary in reference.get("features", {}).items():
        stat = compare(feature, summary, [row.get(feature) for row in rows])
        if stat is not None:
            results.append(stat)
    if reference.get("prediction"):
        stat = compare(PREDICTION, reference["prediction"], flatten_predictions(predictions))
        if stat is not None:
            results.append(stat)
    return results
