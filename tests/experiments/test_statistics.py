"""The statistics core of experiments: calibration against scipy / statsmodels / textbook numbers,
the verdict's rules, and simulations of the error rates people rely on (single_pass)."""

from __future__ import annotations

import json
import math
from dataclasses import asdict

import numpy as np
import pytest
from scipy import integrate, stats

from experiments.analysis import (
    SequentialState,
    analyze_experiment,
    sequential_difference,
    sequential_states,
)
from experiments.sequential import always_valid_p_value, confidence_halfwidth, sequential_inflation
from experiments.statistics import (
    ArmStats,
    ExperimentDesign,
    WeightEpoch,
    arm_summary,
    fixed_horizon_difference,
    guardrail_check,
    sample_size_plan,
    srm_check,
)

Z_975, Z_80 = stats.norm.ppf(0.975), stats.norm.ppf(0.8)


def stats_of(name: str, values: np.ndarray) -> ArmStats:
    return ArmStats(
        name=name, count=len(values), total=float(values.sum()), total_squares=float((values**2).sum())
    )


def binary_design(**overrides: object) -> ExperimentDesign:
    fields = {
        "champion": "sk",
        "challengers": ("xgb",),
        "metric_kind": "binary",
        "direction": "higher_is_better",
        "minimum_effect": 0.01,
    }
    return ExperimentDesign(**{**fields, **overrides})


def continuous_design(**overrides: object) -> ExperimentDesign:
    fields = {
        "champion": "sk",
        "challengers": ("xgb",),
        "metric_kind": "continuous",
        "direction": "higher_is_better",
        "minimum_effect": 0.1,
        "minimum_effect_relative": True,
    }
    return ExperimentDesign(**{**fields, **overrides})


def even(units_a: int, units_b: int) -> list[WeightEpoch]:
    return [WeightEpoch(units={"sk": units_a, "xgb": units_b}, weights={"sk": 50, "xgb": 50})]


# --- fixed-horizon intervals against scipy and statsmodels ------------------------------------


def test_an_arms_mean_interval_is_scipys_t_interval_on_the_raw_data() -> None:
    values = np.random.default_rng(1).gamma(2.0, 3.0, size=400)
    summary = arm_summary(stats_of("sk", values), kind="continuous", alpha=0.05)
    expected = stats.ttest_1samp(values, 0).confidence_interval(0.95)
    assert summary.mean == pytest.approx(values.mean(), rel=1e-12)
    assert (summary.ci_low, summary.ci_high) == pytest.approx((expected.low, expected.high), rel=1e-9)


def test_an_arms_rate_interval_is_the_wilson_interval() -> None:
    summary = arm_summary(ArmStats.binary("sk", units=1000, successes=100), kind="binary", alpha=0.05)
    # Wilson's formula by hand: centre (p + z^2/2n) / (1 + z^2/n), half z/(1+z^2/n) sqrt(pq/n + z^2/4n^2).
    assert (summary.ci_low, summary.ci_high) == pytest.approx(
        (0.08290944359309571, 0.1201519631953484), rel=1e-9
    )
    assert summary.ci_method == "wilson"


def test_the_difference_of_means_is_scipys_welch_test_on_the_raw_data() -> None:
    rng = np.random.default_rng(2)
    a, b = rng.normal(10, 3, size=300), rng.normal(10.6, 5, size=180)
    result = fixed_horizon_difference(stats_of("sk", a), stats_of("xgb", b), kind="continuous", alpha=0.05)
    welch = stats.ttest_ind(b, a, equal_var=False)
    ci = welch.confidence_interval(0.95)
    assert result.difference == pytest.approx(b.mean() - a.mean(), rel=1e-12)
    assert (result.ci_low, result.ci_high) == pytest.approx((ci.low, ci.high), rel=1e-9)
    assert result.p_value == pytest.approx(welch.pvalue, rel=1e-9)


def test_the_difference_of_rates_is_the_unpooled_wald_interval() -> None:
    result = fixed_horizon_difference(
        ArmStats.binary("sk", units=1000, successes=100),
        ArmStats.binary("xgb", units=1000, successes=120),
        kind="binary",
        alpha=0.05,
    )
    # 0.02 +- 1.96 sqrt(.12*.88/1000 + .1*.9/1000)
    assert (result.ci_low, result.ci_high) == pytest.approx(
        (-0.007411481998019935, 0.047411481998019936), rel=1e-9
    )
    assert result.p_value == pytest.approx(0.15270801019387775, rel=1e-9)
    assert "fixed-horizon" in result.note


# --- the plan -----------------------------------------------------------------------------------


def test_the_fixed_horizon_size_for_10_to_11_percent_is_the_textbook_number() -> None:
    plan = sample_size_plan(design=binary_design(), baseline_mean=0.10)
    # (z_.975 + z_.8)^2 (p1 q1 + p2 q2) / delta^2 = 14,748.05
    assert plan.fixed_horizon_units == {"sk": 14749, "xgb": 14749}
    assert plan.planned_units == {"sk": math.ceil(14749 * plan.sequential_inflation)} | {
        "xgb": math.ceil(14749 * plan.sequential_inflation)
    }
    assert plan.planned_units["sk"] == 28583


def test_the_sequential_inflation_gives_the_planned_power_at_a_single_look() -> None:
    inflation = sequential_inflation(alpha=0.05, power=0.8)
    assert inflation == pytest.approx(1.93794, rel=1e-5)
    # At the planned size the standard error is delta / s with s = (z_a + z_b) sqrt(inflation); the
    # chance that the estimate lands beyond the always-valid half-width must be the power.
    delta = 1.0
    s = (Z_975 + Z_80) * math.sqrt(inflation)
    variance = (delta / s) ** 2
    half = float(confidence_halfwidth(variance, delta, 0.05))
    assert stats.norm.cdf((delta - half) / math.sqrt(variance)) == pytest.approx(0.8, abs=1e-6)


def test_a_continuous_plan_with_a_90_10_split_matches_the_closed_form() -> None:
    plan = sample_size_plan(
        design=continuous_design(), baseline_mean=10.0, baseline_variance=100.0, shares={"sk": 90, "xgb": 10}
    )
    # n_A = (z+z)^2 sigma^2 (1 + 1/r) / delta^2 with r = 1/9 and delta = 10 % of 10.
    n_a = (Z_975 + Z_80) ** 2 * 100.0 * 10 / 1.0**2
    assert plan.minimum_effect == 1.0
    assert plan.fixed_horizon_units == {"sk": math.ceil(n_a), "xgb": math.ceil(n_a / 9)}


def test_several_challengers_split_alpha_bonferroni() -> None:
    two = sample_size_plan(design=binary_design(challengers=("xgb", "lgbm")), baseline_mean=0.10)
    one = sample_size_plan(design=binary_design(alpha=0.025), baseline_mean=0.10)
    assert two.alpha_per_comparison == 0.025
    assert two.planned_units["xgb"] == one.planned_units["xgb"] == two.planned_units["lgbm"]


def test_expected_duration_is_the_slowest_arms_units_over_its_daily_units() -> None:
    plan = sample_size_plan(
        design=continuous_design(),
        baseline_mean=10.0,
        baseline_variance=100.0,
        shares={"sk": 90, "xgb": 10},
        units_per_day=1000,
    )
    slowest = max(plan.planned_units["sk"] / 900, plan.planned_units["xgb"] / 100)
    assert plan.expected_days == pytest.approx(slowest)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"baseline_mean": 0.0, "design": continuous_design(), "baseline_variance": 1.0},
            "non-zero baseline",
        ),
        ({"baseline_mean": 1.2, "design": binary_design()}, "strictly between 0 and 1"),
        ({"baseline_mean": 5.0, "design": continuous_design()}, "baseline_variance"),
        ({"baseline_mean": 0.1, "design": binary_design(), "shares": {"sk": 1}}, "every arm"),
    ],
)
def test_a_plan_with_bad_input_says_what_is_wrong(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        sample_size_plan(**kwargs)


def test_inconsistent_statistics_are_refused() -> None:
    with pytest.raises(ValueError, match="successes"):
        ArmStats.binary("sk", units=10, successes=11)
    with pytest.raises(ValueError, match="negative variance"):
        ArmStats(name="sk", count=10, total=100.0, total_squares=50.0)
    with pytest.raises(ValueError, match="distinct"):
        binary_design(challengers=("sk",))


# --- the always-valid test ---------------------------------------------------------------------


def test_the_mixture_p_value_is_one_over_the_integrated_likelihood_ratio() -> None:
    d, v, tau = 0.7, 0.09, 0.5

    def ratio_at(theta: float) -> float:
        return (
            stats.norm.pdf(d, theta, math.sqrt(v))
            / stats.norm.pdf(d, 0, math.sqrt(v))
            * stats.norm.pdf(theta, 0, tau)
        )

    mixture, _ = integrate.quad(ratio_at, -20, 20)
    assert float(always_valid_p_value(d, v, tau)) == pytest.approx(1 / mixture, rel=1e-8)


def test_the_confidence_sequence_ends_where_the_p_value_equals_alpha() -> None:
    v, tau, alpha = 0.04, 0.3, 0.05
    half = float(confidence_halfwidth(v, tau, alpha))
    assert float(always_valid_p_value(half, v, tau)) == pytest.approx(alpha, rel=1e-9)
    assert float(always_valid_p_value(half * 0.99, v, tau)) > alpha


def test_the_always_valid_result_keeps_the_smallest_p_value_and_the_narrowest_interval() -> None:
    a, b = ArmStats.binary("sk", units=5000, successes=500), ArmStats.binary("xgb", units=5000, successes=560)
    previous = SequentialState(p_value=0.2, ci_low=-0.005, ci_high=0.011)
    result = sequential_difference(a, b, alpha=0.05, mixing_sd=0.01, previous=previous)
    fresh = sequential_difference(a, b, alpha=0.05, mixing_sd=0.01)
    assert result.p_value == min(0.2, fresh.p_value)
    assert result.ci_low == max(-0.005, fresh.ci_low) and result.ci_high == min(0.011, fresh.ci_high)


# --- sample ratio mismatch ---------------------------------------------------------------------


def test_srm_is_scipys_chi_square_and_flags_below_one_in_a_thousand() -> None:
    result = srm_check(epochs=even(100_000, 97_000))
    assert result.statistic == pytest.approx(2 * 1500**2 / 98_500, rel=1e-12)
    assert result.p_value == pytest.approx(stats.chi2.sf(2 * 1500**2 / 98_500, 1), rel=1e-9)
    assert result.flagged
    assert not srm_check(epochs=even(10_000, 10_050)).flagged


def test_srm_adds_chi_square_statistics_and_degrees_of_freedom_across_weight_epochs() -> None:
    first = WeightEpoch(units={"sk": 9_100, "xgb": 900}, weights={"sk": 90, "xgb": 10})
    second = WeightEpoch(
        units={"sk": 5_000, "xgb": 4_800, "new": 200}, weights={"sk": 49, "xgb": 49, "new": 2}
    )
    result = srm_check(epochs=[first, second])
    x1 = 100**2 / 9000 + 100**2 / 1000
    x2 = 100**2 / 4900 + 100**2 / 4900 + 0
    assert [e.statistic for e in result.epochs] == pytest.approx([x1, x2], rel=1e-12)
    assert result.dof == 1 + 2
    assert result.p_value == pytest.approx(stats.chi2.sf(x1 + x2, 3), rel=1e-9)


def test_srm_flags_units_in_an_arm_whose_weight_was_zero() -> None:
    epoch = WeightEpoch(units={"sk": 1000, "xgb": 3}, weights={"sk": 100, "xgb": 0})
    result = srm_check(epochs=[epoch])
    assert result.flagged and result.statistic is None


def test_srm_leaves_out_an_epoch_too_small_to_test() -> None:
    tiny = WeightEpoch(units={"sk": 3, "xgb": 0}, weights={"sk": 50, "xgb": 50})
    result = srm_check(epochs=[tiny, *even(5_000, 5_020)])
    assert [e.tested for e in result.epochs] == [False, True]
    assert result.dof == 1 and not result.flagged


# --- verdicts ----------------------------------------------------------------------------------


def analyse_binary(a: int, b: int, units: int = 30_000, **design: object) -> object:
    d = binary_design(**design)
    plan = sample_size_plan(design=d, baseline_mean=0.10, units_per_day=10_000)
    arms = [ArmStats.binary("sk", units=units, successes=a), ArmStats.binary("xgb", units=units, successes=b)]
    return analyze_experiment(design=d, plan=plan, arms=arms, srm_epochs=even(units, units))


def test_a_clear_gain_on_a_higher_is_better_metric_is_better() -> None:
    analysis = analyse_binary(3000, 3400)
    verdict = analysis.comparisons[0].verdict
    assert verdict.outcome == "better"
    assert "'xgb' is better than champion 'sk'" in verdict.sentence


def test_the_same_gain_on_a_lower_is_better_metric_is_worse() -> None:
    assert analyse_binary(3000, 3400, direction="lower_is_better").comparisons[0].verdict.outcome == "worse"


def test_an_interval_inside_the_minimum_effect_is_no_difference() -> None:
    analysis = analyse_binary(12_000, 12_050, units=120_000)
    comparison = analysis.comparisons[0]
    assert comparison.verdict.outcome == "no_difference"
    assert -0.01 < comparison.sequential.ci_low < comparison.sequential.ci_high < 0.01


def test_an_undecided_look_says_how_many_more_units_are_needed() -> None:
    verdict = analyse_binary(500, 520, units=5_000).comparisons[0].verdict
    assert verdict.outcome == "not_yet"
    assert 0 < verdict.units_still_needed["xgb"] <= verdict.units_until_certain["xgb"]
    assert verdict.days_still_needed == pytest.approx(2 * verdict.units_still_needed["xgb"] / 10_000)
    assert "No difference detectable yet" in verdict.sentence


def test_the_units_until_certain_do_make_the_verdict_certain() -> None:
    a, b = (
        ArmStats.binary("sk", units=5_000, successes=500),
        ArmStats.binary("xgb", units=5_000, successes=520),
    )
    verdict = analyse_binary(500, 520, units=5_000).comparisons[0].verdict
    grown = 5_000 + verdict.units_until_certain["sk"]
    variance = (a.variance + b.variance) / grown
    assert 2 * float(confidence_halfwidth(variance, 0.01, 0.05)) <= 0.01 * (1 + 1e-6)


def test_each_of_several_challengers_is_judged_at_alpha_over_their_number() -> None:
    # 3,240 vs 3,000 of 30,000: always-valid p = 0.032, better at alpha 0.05 but not at 0.025.
    arms = [
        ArmStats.binary(n, units=30_000, successes=s)
        for n, s in [("sk", 3000), ("xgb", 3240), ("lgbm", 3000)]
    ]
    units = {"sk": 30_000, "xgb": 30_000, "lgbm": 30_000}

    def outcome(challengers: tuple[str, ...]) -> tuple[str, float]:
        d = binary_design(challengers=challengers)
        plan = sample_size_plan(design=d, baseline_mean=0.10)
        epoch = WeightEpoch(units={n: units[n] for n in d.arms}, weights={n: 1 for n in d.arms})
        analysis = analyze_experiment(design=d, plan=plan, arms=arms, srm_epochs=[epoch])
        xgb = next(c for c in analysis.comparisons if c.challenger == "xgb")
        assert [a.ci_level for a in analysis.arms] == [0.95] * len(d.arms)
        return xgb.verdict.outcome, xgb.sequential.ci_level

    assert outcome(("xgb",)) == ("better", 0.95)
    assert outcome(("xgb", "lgbm")) == ("not_yet", pytest.approx(0.975))


def test_a_sample_ratio_mismatch_withholds_the_verdict() -> None:
    d = binary_design()
    plan = sample_size_plan(design=d, baseline_mean=0.10)
    arms = [
        ArmStats.binary("sk", units=30_000, successes=3000),
        ArmStats.binary("xgb", units=29_000, successes=3400),
    ]
    analysis = analyze_experiment(design=d, plan=plan, arms=arms, srm_epochs=even(30_000, 29_000))
    verdict = analysis.comparisons[0].verdict
    assert analysis.srm.flagged and verdict.outcome == "withheld_srm"
    assert "sample ratio mismatch" in verdict.sentence


def test_a_failed_guardrail_is_named_next_to_a_better_verdict() -> None:
    d = binary_design()
    plan = sample_size_plan(design=d, baseline_mean=0.10)
    arms = [
        ArmStats.binary("sk", units=30_000, successes=3000),
        ArmStats.binary("xgb", units=30_000, successes=3400),
    ]
    latency = guardrail_check(
        metric="p99_latency_seconds", champion=0.120, challenger=0.180, tolerance=0.2, relative=True
    )
    analysis = analyze_experiment(
        design=d, plan=plan, arms=arms, srm_epochs=even(30_000, 30_000), guardrails={"xgb": [latency]}
    )
    verdict = analysis.comparisons[0].verdict
    assert verdict.outcome == "better" and verdict.guardrails_failed == ("p99_latency_seconds",)
    assert "Do not promote on the primary metric alone" in verdict.sentence


def test_guardrails_compare_error_rate_latency_and_psi_against_the_champion() -> None:
    assert guardrail_check(metric="error_rate", champion=0.010, challenger=0.014, tolerance=0.005).passed
    assert not guardrail_check(metric="error_rate", champion=0.010, challenger=0.016, tolerance=0.005).passed
    assert guardrail_check(
        metric="p99", champion=0.100, challenger=0.109, tolerance=0.1, relative=True
    ).passed
    assert not guardrail_check(metric="psi", champion=0.05, challenger=0.30, tolerance=0.1).passed
    accuracy = guardrail_check(
        metric="accuracy", champion=0.90, challenger=0.88, tolerance=0.01, direction="higher_is_better"
    )
    assert not accuracy.passed and accuracy.worsening == pytest.approx(0.02)


def test_a_snapshot_is_strict_json_and_the_next_look_continues_from_it() -> None:
    d = binary_design()
    plan = sample_size_plan(design=d, baseline_mean=0.10)
    early = [ArmStats.binary("sk", units=10, successes=0), ArmStats.binary("xgb", units=10, successes=0)]
    first = analyze_experiment(design=d, plan=plan, arms=early, srm_epochs=even(10, 10))
    snapshot = json.loads(json.dumps(asdict(first), allow_nan=False))
    assert snapshot["comparisons"][0]["verdict"]["outcome"] == "not_yet"
    crossed = [
        ArmStats.binary("sk", units=30_000, successes=3000),
        ArmStats.binary("xgb", units=30_000, successes=3400),
    ]
    second = analyze_experiment(design=d, plan=plan, arms=crossed, srm_epochs=even(30_000, 30_000))
    state = sequential_states(json.loads(json.dumps(asdict(second), allow_nan=False)))
    # A later look whose fresh estimate has drifted back keeps the verdict already reached.
    drifted = [
        ArmStats.binary("sk", units=40_000, successes=4000),
        ArmStats.binary("xgb", units=40_000, successes=4150),
    ]
    third = analyze_experiment(
        design=d, plan=plan, arms=drifted, srm_epochs=even(40_000, 40_000), previous=state
    )
    assert second.comparisons[0].verdict.outcome == third.comparisons[0].verdict.outcome == "better"
    assert third.comparisons[0].sequential.p_value == second.comparisons[0].sequential.p_value


# --- simulations (vectorised; the same functions the analysis calls) -------------------------


def binary_looks(
    rng: np.random.Generator, sims: int, looks: int, units: int, rates: tuple[float, float]
) -> tuple:
    """Cumulative (count, sum, sum of squares) per simulated experiment, look and arm."""
    per_look = units // looks
    sums = rng.binomial(per_look, rates, size=(sims, looks, 2)).cumsum(axis=1).astype(float)
    counts = np.broadcast_to(per_look * np.arange(1, looks + 1)[None, :, None], sums.shape).astype(float)
    return counts, sums, sums


def skewed_looks(
    rng: np.random.Generator, sims: int, looks: int, units: int, means: tuple[float, float]
) -> tuple:
    """Exponential outcomes (a revenue-like skew, sd = mean of the champion), the challenger
    shifted by the planted effect; raw draws, summed per look, in chunks to bound memory."""
    per_look, parts = units // looks, []
    for start in range(0, sims, 200):
        x = rng.exponential(means[0], size=(min(200, sims - start), looks, per_look, 2))
        x[..., 1] += means[1] - means[0]
        parts.append((x.sum(axis=2).cumsum(axis=1), (x * x).sum(axis=2).cumsum(axis=1)))
    sums, squares = np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
    counts = np.broadcast_to(per_look * np.arange(1, looks + 1)[None, :, None], sums.shape).astype(float)
    return counts, sums, squares


def look_p_values(counts: np.ndarray, sums: np.ndarray, squares: np.ndarray, tau: float) -> tuple:
    """Per look: difference, always-valid p (as ``sequential_difference``) and the naive z-test p."""
    variance = (squares - sums * sums / counts) / (counts - 1)
    diff = sums[..., 1] / counts[..., 1] - sums[..., 0] / counts[..., 0]
    var_diff = (variance / counts).sum(axis=-1)
    naive = 2 * stats.norm.sf(np.abs(diff) / np.sqrt(var_diff))
    return diff, always_valid_p_value(diff, var_diff, tau), naive


def test_the_simulation_computes_what_the_analysis_computes() -> None:
    rng = np.random.default_rng(3)
    counts, sums, squares = skewed_looks(rng, 2, 5, 500, (10.0, 11.0))
    diff, p, _ = look_p_values(counts, sums, squares, 1.0)
    for sim, look in [(0, 0), (1, 4)]:
        arms = [ArmStats("sk", int(counts[sim, look, 0]), sums[sim, look, 0], squares[sim, look, 0])]
        arms.append(ArmStats("xgb", int(counts[sim, look, 1]), sums[sim, look, 1], squares[sim, look, 1]))
        result = sequential_difference(*arms, alpha=0.05, mixing_sd=1.0)
        assert (result.difference, result.p_value) == pytest.approx((diff[sim, look], p[sim, look]), rel=1e-9)


def a_a_false_positive_rates(kind: str, sims: int, looks: int) -> tuple[float, float]:
    rng = np.random.default_rng(20240612 if kind == "binary" else 20240613)
    if kind == "binary":
        plan = sample_size_plan(design=binary_design(), baseline_mean=0.10)
        data = binary_looks(rng, sims, looks, plan.planned_units["sk"], (0.10, 0.10))
    else:
        plan = sample_size_plan(design=continuous_design(), baseline_mean=10.0, baseline_variance=100.0)
        data = skewed_looks(rng, sims, looks, plan.planned_units["sk"], (10.0, 10.0))
    _, p, naive = look_p_values(*data, plan.mixing_sd)
    sequential, peeked = (p <= 0.05).any(axis=1).mean(), (naive <= 0.05).any(axis=1).mean()
    print(
        f"\nA/A {kind}: {sims} experiments x {looks} looks: sequential FPR {sequential:.4f}, naive {peeked:.4f}"
    )
    return float(sequential), float(peeked)


@pytest.mark.single_pass
@pytest.mark.parametrize(("kind", "looks"), [("binary", 50), ("continuous", 100)])
def test_a_a_false_positive_rate_stays_within_alpha_when_peeking_at_every_look(kind: str, looks: int) -> None:
    sequential, _ = a_a_false_positive_rates(kind, 2000, looks)
    assert sequential <= 0.05 + 0.02


@pytest.mark.single_pass
def test_a_fixed_horizon_test_peeked_as_often_exceeds_twice_alpha() -> None:
    _, peeked = a_a_false_positive_rates("binary", 2000, 50)
    assert peeked > 2 * 0.05


def detected_by_planned_size(kind: str, sims: int, looks: int) -> float:
    """Share of experiments whose first always-valid rejection says 'better' by the plan's size."""
    rng = np.random.default_rng(7 if kind == "binary" else 8)
    if kind == "binary":
        plan = sample_size_plan(design=binary_design(), baseline_mean=0.10)
        data = binary_looks(rng, sims, looks, plan.planned_units["sk"], (0.10, 0.11))
    else:
        plan = sample_size_plan(design=continuous_design(), baseline_mean=10.0, baseline_variance=100.0)
        data = skewed_looks(rng, sims, looks, plan.planned_units["sk"], (10.0, 11.0))
    diff, p, _ = look_p_values(*data, plan.mixing_sd)
    crossed = p <= 0.05
    first = crossed.argmax(axis=1)
    better = crossed.any(axis=1) & (diff[np.arange(sims), first] > 0)
    print(
        f"\nA/B {kind}: planned {plan.planned_units['sk']} per arm, detected as better in {better.mean():.4f}"
    )
    return float(better.mean())


@pytest.mark.single_pass
@pytest.mark.parametrize("kind", ["binary", "continuous"])
def test_a_b_with_the_minimum_effect_is_detected_by_the_planned_size(kind: str) -> None:
    assert detected_by_planned_size(kind, 2000, 50) >= 0.75


def srm_flag_rate(*, loss: float, sims: int, seed: int) -> float:
    rng = np.random.default_rng(seed)
    assigned = rng.binomial(200_000, 0.5, size=sims)
    kept = rng.binomial(200_000 - assigned, 1 - loss)
    flags = [srm_check(epochs=even(int(a), int(b))).flagged for a, b in zip(assigned, kept, strict=True)]
    rate = float(np.mean(flags))
    print(
        f"\nSRM: {loss:.0%} of one arm lost, {sims} experiments at ~100,000 units per arm: flagged {rate:.4f}"
    )
    return rate


@pytest.mark.single_pass
def test_srm_flags_a_3_percent_loss_in_one_arm_at_100k_units_per_arm() -> None:
    assert srm_flag_rate(loss=0.03, sims=2000, seed=5) >= 0.95


@pytest.mark.single_pass
def test_srm_rarely_flags_a_correct_split() -> None:
    # 10,000 experiments: about 10 false alarms expected (p < 0.001, sd ~3); the 0.3 % bound (30)
    # fails a check that alarms at well over three times its nominal rate.
    assert srm_flag_rate(loss=0.0, sims=10_000, seed=6) <= 0.003
