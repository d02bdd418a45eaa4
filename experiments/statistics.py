"""The statistics of an experiment that need no look history: inputs, plan, fixed-horizon
intervals, sample ratio mismatch and guardrails. Pure and Django-free.

Inputs are sufficient statistics per arm (the app aggregates feedback in SQL); outputs are frozen
dataclasses that ``dataclasses.asdict`` turns into a JSON-ready snapshot. Undefined numbers are
``None``, never NaN or infinity, so the snapshot is strict JSON. Bad input raises ``ValueError``
with a message the app can show as a 400. The always-valid comparison and the verdict live in
``experiments.analysis``; the mSPRT arithmetic in ``experiments.sequential``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from scipy import stats
from statsmodels.stats.power import NormalIndPower
from statsmodels.stats.proportion import (
    confint_proportions_2indep,
    proportion_confint,
    test_proportions_2indep,
)

from experiments.sequential import MIXING_SCALE, sequential_inflation

MetricKind = Literal["binary", "continuous"]
Direction = Literal["higher_is_better", "lower_is_better"]

SRM_THRESHOLD = 0.001
# Chi-square is an approximation that needs a handful of expected units per cell.
SRM_MIN_EXPECTED = 5.0


@dataclass(frozen=True)
class ArmStats:
    """Sufficient statistics of one arm's primary metric: units, sum and sum of squares.

    For a 0/1 metric the sum is the number of successes and equals the sum of squares; build it
    with ``ArmStats.binary``.
    """

    name: str
    count: int
    total: float
    total_squares: float

    def __post_init__(self) -> None:
        if self.count < 0:
            raise ValueError(f"arm {self.name!r}: count must be >= 0, got {self.count}")
        if self.count and self.total_squares < self.total**2 / self.count * (1 - 1e-9) - 1e-9:
            raise ValueError(f"arm {self.name!r}: sum of squares below sum^2/count (negative variance)")

    @classmethod
    def binary(cls, name: str, *, units: int, successes: int) -> ArmStats:
        """A 0/1 metric: ``successes`` out of ``units``."""
        if not 0 <= successes <= units:
            raise ValueError(
                f"arm {name!r}: successes must be between 0 and units ({units}), got {successes}"
            )
        return cls(name=name, count=units, total=successes, total_squares=successes)

    @property
    def mean(self) -> float:
        return self.total / self.count if self.count else math.nan

    @property
    def variance(self) -> float:
        """Sample variance (n - 1); for 0/1 data this is p(1-p) * n/(n-1)."""
        if self.count < 2:
            return math.nan
        return max(self.total_squares - self.total**2 / self.count, 0.0) / (self.count - 1)


@dataclass(frozen=True)
class ExperimentDesign:
    """What an experiment compares and how: arms, metric, direction, error rates, minimum effect.

    ``minimum_effect`` is a difference challenger - champion in metric units, or a fraction of the
    baseline when ``minimum_effect_relative`` (0.05 = 5 %). With several challengers each
    comparison runs at ``alpha / len(challengers)`` (Bonferroni: valid whatever the correlation
    between comparisons that share the champion, and simple to explain).
    """

    champion: str
    challengers: tuple[str, ...]
    metric_kind: MetricKind
    direction: Direction
    minimum_effect: float
    minimum_effect_relative: bool = False
    alpha: float = 0.05
    power: float = 0.8

    def __post_init__(self) -> None:
        if not self.challengers:
            raise ValueError("an experiment needs at least one challenger")
        if self.champion in self.challengers or len(set(self.challengers)) != len(self.challengers):
            raise ValueError("arm names must be distinct")
        if self.metric_kind not in ("binary", "continuous"):
            raise ValueError(f"metric_kind must be 'binary' or 'continuous', got {self.metric_kind!r}")
        if self.direction not in ("higher_is_better", "lower_is_better"):
            raise ValueError(
                f"direction must be 'higher_is_better' or 'lower_is_better', got {self.direction!r}"
            )
        if not 0 < self.alpha < 0.5 or not 0.5 <= self.power < 1:
            raise ValueError("alpha must be in (0, 0.5) and power in [0.5, 1)")
        if not self.minimum_effect > 0:
            raise ValueError("minimum_effect must be > 0 (a size, in either direction)")

    @property
    def alpha_per_comparison(self) -> float:
        return self.alpha / len(self.challengers)

    @property
    def arms(self) -> tuple[str, ...]:
        return (self.champion, *self.challengers)


@dataclass(frozen=True)
class SampleSizePlan:
    """Units per arm the always-valid test needs for the design's power at the minimum effect."""

    alpha_per_comparison: float
    power: float
    minimum_effect: float
    baseline_mean: float
    baseline_variance: float
    mixing_sd: float
    fixed_horizon_units: dict[str, int]
    sequential_inflation: float
    planned_units: dict[str, int]
    planned_units_total: int
    shares: dict[str, float]
    units_per_day: float | None
    expected_days: float | None


def sample_size_plan(
    *,
    design: ExperimentDesign,
    baseline_mean: float,
    baseline_variance: float | None = None,
    shares: Mapping[str, float] | None = None,
    units_per_day: float | None = None,
) -> SampleSizePlan:
    """Plan per-arm units: statsmodels' fixed-horizon normal power, times the sequential inflation.

    ``baseline_variance`` is the per-unit variance of a continuous metric (both arms assumed
    alike); a binary metric's comes from the rates. ``shares`` are the weights in force (any
    scale; default equal); each challenger is planned against the champion at their ratio and the
    champion takes the largest need. ``expected_days`` is the slowest arm's units over its daily
    units. The plan fixes the absolute minimum effect and the mixing sd every later look uses.
    """
    shares_n = _normalised_shares(design.arms, shares)
    effect = design.minimum_effect * (abs(baseline_mean) if design.minimum_effect_relative else 1.0)
    if effect <= 0:
        raise ValueError("a relative minimum effect needs a non-zero baseline_mean")
    variance = _baseline_variance(design, baseline_mean, baseline_variance, effect)
    inflation = sequential_inflation(alpha=design.alpha_per_comparison, power=design.power)
    fixed: dict[str, int] = {}
    for challenger in design.challengers:
        ratio = shares_n[challenger] / shares_n[design.champion]
        var_b = variance if design.metric_kind == "continuous" else _rate_variance(baseline_mean, effect)
        # One sigma for NormalIndPower such that sigma^2 (1 + 1/ratio) = var_A + var_B / ratio.
        sigma = math.sqrt((variance + var_b / ratio) / (1.0 + 1.0 / ratio))
        n_champion = NormalIndPower().solve_power(
            effect_size=effect / sigma, alpha=design.alpha_per_comparison, power=design.power, ratio=ratio
        )
        fixed[challenger] = math.ceil(n_champion * ratio)
        fixed[design.champion] = max(fixed.get(design.champion, 0), math.ceil(n_champion))
    planned = {arm: math.ceil(n * inflation) for arm, n in fixed.items()}
    days = None
    if units_per_day and units_per_day > 0:
        days = max(planned[arm] / (units_per_day * shares_n[arm]) for arm in design.arms)
    return SampleSizePlan(
        alpha_per_comparison=design.alpha_per_comparison,
        power=design.power,
        minimum_effect=effect,
        baseline_mean=baseline_mean,
        baseline_variance=variance,
        mixing_sd=MIXING_SCALE * effect,
        fixed_horizon_units={arm: fixed[arm] for arm in design.arms},
        sequential_inflation=inflation,
        planned_units={arm: planned[arm] for arm in design.arms},
        planned_units_total=sum(planned.values()),
        shares=shares_n,
        units_per_day=units_per_day,
        expected_days=days,
    )


def _rate_variance(baseline: float, effect: float) -> float:
    """A challenger's 0/1 variance at the baseline rate moved by the effect, towards 0.5 (the
    larger variance, so the plan is not optimistic whichever way the effect goes)."""
    rate = baseline + effect if baseline < 0.5 else baseline - effect
    rate = min(max(rate, 0.0), 1.0)
    return rate * (1.0 - rate)


def _baseline_variance(
    design: ExperimentDesign, baseline_mean: float, baseline_variance: float | None, effect: float
) -> float:
    if design.metric_kind == "binary":
        if not 0 < baseline_mean < 1:
            raise ValueError("a binary metric's baseline_mean is a rate strictly between 0 and 1")
        if effect >= max(baseline_mean, 1 - baseline_mean):
            raise ValueError("the minimum effect moves the rate outside [0, 1]")
        return baseline_mean * (1.0 - baseline_mean)
    if baseline_variance is None or not baseline_variance > 0:
        raise ValueError("a continuous metric needs baseline_variance > 0 (per-unit variance)")
    return baseline_variance


def _normalised_shares(arms: Sequence[str], shares: Mapping[str, float] | None) -> dict[str, float]:
    if shares is None:
        return {arm: 1.0 / len(arms) for arm in arms}
    missing = [arm for arm in arms if not shares.get(arm, 0) > 0]
    if missing:
        raise ValueError(f"shares must be > 0 for every arm; missing or zero: {missing}")
    total = sum(shares[arm] for arm in arms)
    return {arm: shares[arm] / total for arm in arms}


# --- fixed-horizon intervals (valid once, at a sample size fixed in advance) -----------------


@dataclass(frozen=True)
class ArmSummary:
    """One arm at this look: units, mean or rate, and its ordinary (fixed-horizon) interval."""

    name: str
    units: int
    mean: float | None
    ci_low: float | None
    ci_high: float | None
    ci_level: float
    ci_method: str


def arm_summary(arm: ArmStats, *, kind: MetricKind, alpha: float) -> ArmSummary:
    """Wilson interval for a rate (statsmodels), Student t interval for a mean (scipy)."""
    low = high = None
    if kind == "binary" and arm.count > 0:
        low, high = proportion_confint(arm.total, arm.count, alpha=alpha, method="wilson")
    elif kind == "continuous" and arm.count >= 2:
        scale = math.sqrt(arm.variance / arm.count)
        if scale > 0:
            low, high = stats.t.interval(1 - alpha, arm.count - 1, loc=arm.mean, scale=scale)
    return ArmSummary(
        name=arm.name,
        units=arm.count,
        mean=_finite(arm.mean),
        ci_low=_finite(low),
        ci_high=_finite(high),
        ci_level=1 - alpha,
        ci_method="wilson" if kind == "binary" else "student_t",
    )


@dataclass(frozen=True)
class FixedHorizonDifference:
    """Challenger minus champion, ordinary interval and p-value: valid only when read once, at
    the planned sample size. Shown for comparison with other tools; never used for the verdict."""

    difference: float | None
    ci_low: float | None
    ci_high: float | None
    p_value: float | None
    ci_level: float
    method: str
    note: str = "fixed-horizon: valid only if read once at the planned sample size, not when peeking"


def fixed_horizon_difference(
    champion: ArmStats, challenger: ArmStats, *, kind: MetricKind, alpha: float
) -> FixedHorizonDifference:
    """Welch t (scipy) for means; unpooled Wald difference of rates (statsmodels) for 0/1."""
    if kind == "binary":
        diff = challenger.mean - champion.mean if champion.count and challenger.count else None
        # All-0 or all-1 arms leave the Wald variance at zero: no interval to give yet.
        if diff is None or _rate_variance_of_difference(champion, challenger) == 0:
            return FixedHorizonDifference(_finite(diff), None, None, None, 1 - alpha, "wald_diff_rates")
        args = (challenger.total, challenger.count, champion.total, champion.count)
        low, high = confint_proportions_2indep(*args, method="wald", compare="diff", alpha=alpha)
        p = test_proportions_2indep(*args, method="wald", compare="diff").pvalue
        return FixedHorizonDifference(
            diff, _finite(low), _finite(high), _finite(p), 1 - alpha, "wald_diff_rates"
        )
    if champion.count < 2 or challenger.count < 2:
        return FixedHorizonDifference(None, None, None, None, 1 - alpha, "welch_t")
    va, vb = champion.variance / champion.count, challenger.variance / challenger.count
    diff = challenger.mean - champion.mean
    se = math.sqrt(va + vb)
    if se == 0:
        return FixedHorizonDifference(diff, None, None, None, 1 - alpha, "welch_t")
    df = (va + vb) ** 2 / (va**2 / (champion.count - 1) + vb**2 / (challenger.count - 1))
    half = stats.t.ppf(1 - alpha / 2, df) * se
    p = 2 * stats.t.sf(abs(diff) / se, df)
    return FixedHorizonDifference(diff, diff - half, diff + half, float(p), 1 - alpha, "welch_t")


def _rate_variance_of_difference(champion: ArmStats, challenger: ArmStats) -> float:
    return sum(a.mean * (1 - a.mean) / a.count for a in (champion, challenger))


# --- sample ratio mismatch -------------------------------------------------------------------


@dataclass(frozen=True)
class WeightEpoch:
    """Units that entered each arm while one set of weights was in force (any scale)."""

    units: Mapping[str, int]
    weights: Mapping[str, float]


@dataclass(frozen=True)
class SrmEpochResult:
    """Chi-square goodness of fit of one epoch; ``tested`` is False when too small to test."""

    statistic: float | None
    dof: int
    p_value: float
    tested: bool


@dataclass(frozen=True)
class SrmResult:
    """Sample ratio mismatch over all epochs: summed chi-square and degrees of freedom."""

    statistic: float | None
    dof: int
    p_value: float
    flagged: bool
    threshold: float
    epochs: tuple[SrmEpochResult, ...] = field(default_factory=tuple)


def srm_check(*, epochs: Sequence[WeightEpoch], threshold: float = SRM_THRESHOLD) -> SrmResult:
    """Chi-square (scipy) of units per arm against the weights of each epoch, combined by adding
    statistics and degrees of freedom (independent epochs), flagged when p < ``threshold``.

    Units in an arm whose weight was zero are an impossible allocation: flagged outright.
    """
    results = [_srm_epoch(epoch) for epoch in epochs]
    statistic = sum(math.inf if r.statistic is None else r.statistic for r in results if r.tested)
    dof = sum(r.dof for r in results if r.tested)
    p = float(stats.chi2.sf(statistic, dof)) if dof else 1.0
    return SrmResult(
        statistic=_finite(statistic),
        dof=dof,
        p_value=p,
        flagged=p < threshold,
        threshold=threshold,
        epochs=tuple(results),
    )


def _srm_epoch(epoch: WeightEpoch) -> SrmEpochResult:
    arms = sorted(set(epoch.units) | set(epoch.weights))
    if any(epoch.units.get(a, 0) < 0 or epoch.weights.get(a, 0) < 0 for a in arms):
        raise ValueError("units and weights must be >= 0")
    if any(epoch.units.get(a, 0) > 0 and epoch.weights.get(a, 0) == 0 for a in arms):
        return SrmEpochResult(statistic=None, dof=1, p_value=0.0, tested=True)
    live = [a for a in arms if epoch.weights.get(a, 0) > 0]
    total_units = sum(epoch.units.get(a, 0) for a in live)
    total_weight = sum(epoch.weights[a] for a in live)
    expected = [total_units * epoch.weights[a] / total_weight for a in live]
    if len(live) < 2 or min(expected, default=0) < SRM_MIN_EXPECTED:
        return SrmEpochResult(statistic=0.0, dof=0, p_value=1.0, tested=False)
    result = stats.chisquare([epoch.units.get(a, 0) for a in live], f_exp=expected)
    return SrmEpochResult(float(result.statistic), len(live) - 1, float(result.pvalue), True)


# --- guardrails ------------------------------------------------------------------------------


@dataclass(frozen=True)
class GuardrailResult:
    """Whether the challenger is worse than the champion by no more than the tolerance (and, with
    a ``bound``, no higher than it). ``status``: passed, failed, or not_yet (no value to compare
    yet; it does not fail the verdict)."""

    metric: str
    champion: float | None
    challenger: float | None
    worsening: float | None
    tolerance: float
    relative: bool
    passed: bool
    sentence: str
    bound: float | None = None
    status: str = ""


def guardrail_check(
    *,
    metric: str,
    champion: float,
    challenger: float,
    tolerance: float,
    direction: Direction = "lower_is_better",
    relative: bool = False,
    bound: float | None = None,
) -> GuardrailResult:
    """ "Challenger not worse than champion by more than ``tolerance``" on a number such as an
    error rate, a p99 latency or a PSI (all lower-is-better, the default). ``relative``: the
    tolerance is a fraction of the champion's value (0.1 = 10 % worse allowed). ``bound``: an
    absolute limit on the challenger's value too (at most, or for higher-is-better at least)."""
    if tolerance < 0:
        raise ValueError("tolerance must be >= 0")
    worse = challenger - champion if direction == "lower_is_better" else champion - challenger
    if relative:
        worse = worse / abs(champion) if champion else (math.inf if worse > 0 else 0.0)
    within_bound = bound is None or (
        challenger <= bound if direction == "lower_is_better" else challenger >= bound
    )
    passed = worse <= tolerance and within_bound
    unit = " (relative)" if relative else ""
    sentence = (
        f"{metric}: challenger {challenger:.4g} vs champion {champion:.4g}, "
        f"{'within' if worse <= tolerance else 'beyond'} the allowed worsening of {tolerance:.4g}{unit}"
    )
    if bound is not None:
        limit = "at most" if direction == "lower_is_better" else "at least"
        sentence += f"; {'within' if within_bound else 'beyond'} the bound of {limit} {bound:.4g}"
    return GuardrailResult(
        metric,
        champion,
        challenger,
        _finite(worse),
        tolerance,
        relative,
        passed,
        sentence,
        bound,
        "passed" if passed else "failed",
    )


def guardrail_not_yet(
    *, metric: str, tolerance: float, relative: bool = False, bound: float | None = None, missing: str
) -> GuardrailResult:
    """A guardrail with nothing to compare yet (``missing`` says what): shown, never failed."""
    sentence = f"{metric}: not yet, {missing}"
    return GuardrailResult(metric, None, None, None, tolerance, relative, True, sentence, bound, "not_yet")


def _finite(value: float | None) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None
