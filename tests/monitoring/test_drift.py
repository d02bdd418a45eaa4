"""Drift statistics validated against scipy on synthetic data."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from monitoring import drift

RNG_SEED = 20261125


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(RNG_SEED)


def _scipy_psi(summary: dict, live: np.ndarray) -> float:
    """PSI as the symmetric KL divergence, computed by scipy over the same bins."""
    edges = np.r_[-np.inf, summary["edges"], np.inf]
    # np.histogram's bins are left-closed, ours right-closed: equal for continuous data.
    live_shares = np.histogram(live, edges)[0] / live.size
    p = np.clip(np.asarray(summary["shares"]), drift.EPSILON, None)
    q = np.clip(live_shares, drift.EPSILON, None)
    return float(stats.entropy(p, q) + stats.entropy(q, p))


def test_it_finds_no_drift_when_live_data_comes_from_the_reference_distribution(rng):
    reference, live = rng.normal(0, 1, 5000), rng.normal(0, 1, 2000)
    stat = drift.compare("x", drift.summarize(reference), live.tolist())
    assert stat.psi < 0.05
    assert stat.psi == pytest.approx(_scipy_psi(drift.summarize(reference), live), rel=1e-9)
    assert stat.ks_stat == pytest.approx(stats.ks_2samp(reference, live).statistic, abs=0.01)
    assert stat.ks_pvalue > 0.05
    assert not stat.drifted


def test_it_flags_a_mean_shift_of_half_a_standard_deviation(rng):
    reference, live = rng.normal(0, 1, 5000), rng.normal(0.5, 1, 2000)
    stat = drift.compare("x", drift.summarize(reference), live.tolist())
    assert stat.psi > 0.1
    assert stat.psi == pytest.approx(_scipy_psi(drift.summarize(reference), live), rel=1e-9)
    assert stat.ks_stat == pytest.approx(stats.ks_2samp(reference, live).statistic, abs=0.01)
    assert stat.ks_pvalue < 1e-6
    assert (stat.n_live, stat.n_reference) == (2000, 5000)


def test_it_flags_a_swap_of_category_shares(rng):
    reference = rng.choice(["a", "b", "c"], p=[0.7, 0.2, 0.1], size=5000)
    swapped = rng.choice(["a", "b", "c"], p=[0.1, 0.2, 0.7], size=2000)
    same = rng.choice(["a", "b", "c"], p=[0.7, 0.2, 0.1], size=2000)
    summary = drift.summarize(reference.tolist())
    assert summary["kind"] == "categorical"

    drifted = drift.compare("c", summary, swapped.tolist())
    stable = drift.compare("c", summary, same.tolist())

    assert drifted.drifted and drifted.psi > 1.0
    assert drifted.chi2_pvalue < 1e-6
    assert not stable.drifted and stable.psi < 0.05
    ref_counts = np.array([np.sum(reference == c) for c in "abc"])
    live_counts = np.array([np.sum(swapped == c) for c in "abc"])
    expected = stats.chi2_contingency(np.vstack([ref_counts, live_counts]))
    assert drifted.chi2_stat == pytest.approx(expected.statistic, rel=1e-3)


def test_it_treats_class_labels_as_categories_and_unseen_ones_as_drift():
    summary = drift.summarize([0, 1, 1, 0, 1] * 100)
    assert summary["kind"] == "categorical" and summary["shares"] == {"0": 0.4, "1": 0.6}
    stat = drift.compare(drift.PREDICTION, summary, [2.0] * 50 + [1] * 50)
    assert stat.drifted


def test_it_builds_a_reference_for_every_column_and_the_prediction(rng):
    columns = {"x": rng.normal(0, 1, 300).tolist(), "colour": ["red", "blue", None] * 100}
    reference = drift.build_reference(columns, [[0], [1], [1]] * 100, kind="training")
    assert reference["kind"] == "training"
    assert set(reference["features"]) == {"x", "colour"}
    assert reference["features"]["colour"]["n"] == 200  # missing values left out
    assert len(reference["features"]["x"]["edges"]) == drift.DEFAULT_BINS - 1
    assert reference["prediction"]["shares"] == {"0": pytest.approx(1 / 3), "1": pytest.approx(2 / 3)}


def test_it_compares_only_the_shifted_feature_as_drifted(rng):
    train = {"a": rng.normal(0, 1, 3000).tolist(), "b": rng.normal(5, 2, 3000).tolist()}
    reference = drift.build_reference(train, [0, 1] * 1500, kind="training")
    rows = [{"a": a, "b": b} for a, b in zip(rng.normal(0, 1, 1000), rng.normal(8, 2, 1000), strict=True)]
    results = {s.feature: s for s in drift.compare_to_reference(reference, rows, [0, 1] * 500)}
    assert results["b"].drifted and not results["a"].drifted
    assert not results[drift.PREDICTION].drifted
