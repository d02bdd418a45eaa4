"""Thompson-sampling bandit: posteriors, the weight rules (floor, cap, sum 100), and simulated
streams against the numbers docs/experiments-statistics.md states (single_pass)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
from scipy import integrate, stats

from experiments.bandit import (
    BanditConfig,
    bandit_weights,
    capped_move,
    posterior_draws,
    probability_best,
    regret,
    round_to_percent,
)
from experiments.statistics import ArmStats

# Stated in docs/experiments-statistics.md ("Bandit mode"): a controller step every 500 outcomes,
# floor 5 %, cap 10 points per step.
OUTCOMES_PER_STEP = 500
OUTCOMES_TO_80_PERCENT = {(0.10, 0.15): 5_000, (0.50, 0.55): 10_000}


def test_a_beta_posteriors_chance_of_being_best_is_the_exact_integral() -> None:
    a, b = ArmStats.binary("a", units=200, successes=20), ArmStats.binary("b", units=180, successes=27)
    post_a, post_b = stats.beta(21, 181), stats.beta(28, 154)
    exact, _ = integrate.quad(lambda x: post_b.pdf(x) * post_a.cdf(x), 0, 1)
    rng = np.random.default_rng(1)
    chance = probability_best(
        [a, b], metric_kind="binary", direction="higher_is_better", rng=rng, draws=400_000
    )
    assert chance["b"] == pytest.approx(exact, abs=0.003)
    assert chance["a"] + chance["b"] == pytest.approx(1.0)


def test_a_numeric_arms_posterior_mean_is_student_t_around_the_sample_mean() -> None:
    values = np.random.default_rng(2).normal(3.0, 2.0, size=25)
    arm = ArmStats("a", 25, float(values.sum()), float((values**2).sum()))
    draws = posterior_draws(arm, metric_kind="continuous", rng=np.random.default_rng(3), draws=50_000)
    expected = stats.t(24, loc=values.mean(), scale=values.std(ddof=1) / 5)
    assert stats.kstest(draws, expected.cdf).pvalue > 0.01
    assert stats.kstest(draws, stats.norm(values.mean(), values.std(ddof=1) / 5).cdf).pvalue < 0.01


def test_lower_is_better_favours_the_arm_with_the_lower_mean() -> None:
    low = ArmStats("fast", 500, 500 * 1.0, 500 * (1.0 + 0.04))
    high = ArmStats("slow", 500, 500 * 1.2, 500 * (1.44 + 0.04))
    chance = probability_best(
        [low, high],
        metric_kind="continuous",
        direction="lower_is_better",
        rng=np.random.default_rng(4),
        draws=2000,
    )
    assert chance["fast"] > 0.99


def test_weights_are_whole_percent_summing_to_100_above_the_floor_and_within_the_cap() -> None:
    rng = np.random.default_rng(5)
    for _ in range(2000):
        arms = int(rng.integers(2, 6))
        floor, cap = int(rng.integers(0, 100 // arms + 1)), int(rng.integers(1, 30))
        names = [f"v{i}" for i in range(arms)]
        free = 100 - floor * arms
        current = round_to_percent(dict(zip(names, floor + free * rng.dirichlet(np.ones(arms)), strict=True)))
        target = round_to_percent(
            dict(zip(names, floor + free * rng.dirichlet(np.ones(arms) * 0.3), strict=True))
        )
        moved = capped_move(current, target, floor, cap)
        assert sum(moved.values()) == 100 and all(isinstance(v, int) for v in moved.values())
        assert min(moved.values()) >= floor
        assert max(abs(moved[n] - current[n]) for n in names) <= cap
        assert all(min(current[n], target[n]) <= moved[n] <= max(current[n], target[n]) for n in names)


def test_weights_stay_put_until_every_arm_has_enough_outcomes() -> None:
    arms = [ArmStats.binary("a", units=29, successes=1), ArmStats.binary("b", units=400, successes=200)]
    step = bandit_weights(
        arms=arms,
        current_weights={"a": 70, "b": 30},
        config=BanditConfig("binary"),
        rng=np.random.default_rng(6),
    )
    assert step.warming_up and step.weights == {"a": 70, "b": 30}


def test_weights_that_break_the_floor_go_straight_to_the_target() -> None:
    assert capped_move({"a": 100, "b": 0}, {"a": 60, "b": 40}, floor=5, max_step=10) == {"a": 60, "b": 40}


def test_a_floor_that_the_arms_cannot_all_have_is_refused() -> None:
    arms = [ArmStats.binary(n, units=100, successes=10) for n in "abcde"]
    with pytest.raises(ValueError, match="exceeds 100"):
        bandit_weights(
            arms=arms,
            current_weights=None,
            config=BanditConfig("binary", floor=25),
            rng=np.random.default_rng(),
        )


def test_regret_is_units_times_the_gap_to_the_best_arm() -> None:
    lost = regret(
        units={"a": 1000, "b": 3000}, true_means={"a": 0.10, "b": 0.15}, direction="higher_is_better"
    )
    assert lost == pytest.approx(1000 * 0.05)


@dataclass
class Stream:
    outcomes_to_80: int | None
    lowest_share: int
    regret: float
    fixed_regret: float


def simulate_stream(
    seed: int, means: tuple[float, float], *, kind: str, steps: int, sd: float = 1.0
) -> Stream:
    """One endpoint under bandit mode: each step routes OUTCOMES_PER_STEP units by the weights in
    force, observes their outcomes, and runs the controller once."""
    rng = np.random.default_rng(seed)
    config = BanditConfig(kind)
    weights, units = {"a": 50, "b": 50}, {"a": 0, "b": 0}
    sums, squares = {"a": 0.0, "b": 0.0}, {"a": 0.0, "b": 0.0}
    first, lowest = None, 50
    for step in range(1, steps + 1):
        routed = rng.multinomial(OUTCOMES_PER_STEP, [weights["a"] / 100, weights["b"] / 100])
        for arm, n, mean in zip("ab", routed, means, strict=True):
            x = rng.binomial(1, mean, size=n) if kind == "binary" else rng.normal(mean, sd, size=n)
            units[arm] += int(n)
            sums[arm] += float(x.sum())
            squares[arm] += float((x * x).sum())
        arms = [ArmStats(arm, units[arm], sums[arm], squares[arm]) for arm in "ab"]
        weights = bandit_weights(arms=arms, current_weights=weights, config=config, rng=rng).weights
        lowest = min(lowest, *weights.values())
        if first is None and weights["b"] > 80:
            first = step * OUTCOMES_PER_STEP
    true = {"a": means[0], "b": means[1]}
    fixed = regret(units={"a": steps * OUTCOMES_PER_STEP // 2}, true_means=true, direction="higher_is_better")
    return Stream(first, lowest, regret(units=units, true_means=true, direction="higher_is_better"), fixed)


@pytest.mark.single_pass
@pytest.mark.parametrize("rates", list(OUTCOMES_TO_80_PERCENT))
def test_an_arm_5_points_better_passes_80_percent_within_the_stated_outcomes(
    rates: tuple[float, float],
) -> None:
    streams = [simulate_stream(seed, rates, kind="binary", steps=30) for seed in range(100)]
    reached = np.array([s.outcomes_to_80 or np.inf for s in streams])
    bandit, fixed = np.mean([s.regret for s in streams]), streams[0].fixed_regret
    print(
        f"\nbandit {rates}: >80 % after median {np.median(reached):,.0f}, worst {reached.max():,.0f} outcomes; "
        f"lowest share {min(s.lowest_share for s in streams)} %; regret over {30 * OUTCOMES_PER_STEP:,} outcomes "
        f"{bandit:.1f} vs {fixed:.1f} at fixed 50/50"
    )
    assert reached.max() <= OUTCOMES_TO_80_PERCENT[rates]
    assert min(s.lowest_share for s in streams) >= 5
    assert bandit < fixed


@pytest.mark.single_pass
def test_a_numeric_outcome_moves_traffic_to_the_better_arm_too() -> None:
    streams = [
        simulate_stream(seed, (10.0, 11.0), kind="continuous", steps=20, sd=10.0) for seed in range(100)
    ]
    reached = np.array([s.outcomes_to_80 or np.inf for s in streams])
    print(
        f"\nbandit numeric (mean 10 vs 11, sd 10): >80 % after median {np.median(reached):,.0f}, worst {reached.max():,.0f}"
    )
    assert reached.max() <= 10_000
    assert min(s.lowest_share for s in streams) >= 5
