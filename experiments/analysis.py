"""One look at an experiment: per-arm summaries, the always-valid comparison of each challenger
with the champion, sample ratio mismatch, and a verdict in words. Pure and Django-free.

The app calls ``analyze_experiment`` at every look with the sufficient statistics it aggregated,
stores ``dataclasses.asdict(result)`` as the look's snapshot, and passes
``sequential_states(snapshot)`` to the next look: the always-valid p-value is a running minimum
and the interval a running intersection, so a verdict once reached does not flip back.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from experiments.sequential import always_valid_p_value, confidence_halfwidth, scale_to_halfwidth
from experiments.statistics import (
    ArmStats,
    ArmSummary,
    ExperimentDesign,
    FixedHorizonDifference,
    GuardrailResult,
    SampleSizePlan,
    SrmResult,
    WeightEpoch,
    arm_summary,
    fixed_horizon_difference,
    srm_check,
)

Outcome = Literal["better", "worse", "no_difference", "not_yet", "withheld_srm"]

# Below this many units in either arm the plug-in variance is too rough for the normal
# approximation the mSPRT rests on: the look reports no sequential result yet.
MIN_UNITS_PER_ARM = 30


@dataclass(frozen=True)
class SequentialState:
    """What one look hands the next: running-minimum p-value and running-intersection interval."""

    p_value: float
    ci_low: float | None
    ci_high: float | None


@dataclass(frozen=True)
class SequentialDifference:
    """Challenger minus champion with an always-valid p-value and confidence sequence (mSPRT):
    both may be read at every look without inflating the error rate."""

    difference: float | None
    std_error: float | None
    p_value: float
    ci_low: float | None
    ci_high: float | None
    ci_level: float
    mixing_sd: float
    method: str = "msprt_normal_mixture"

    @property
    def state(self) -> SequentialState:
        return SequentialState(self.p_value, self.ci_low, self.ci_high)


def sequential_difference(
    champion: ArmStats,
    challenger: ArmStats,
    *,
    alpha: float,
    mixing_sd: float,
    previous: SequentialState | None = None,
) -> SequentialDifference:
    """mSPRT on the difference of means (Welch variance; for 0/1 data, of rates)."""
    previous = previous or SequentialState(1.0, None, None)
    if min(champion.count, challenger.count) < MIN_UNITS_PER_ARM:
        return SequentialDifference(
            None, None, previous.p_value, previous.ci_low, previous.ci_high, 1 - alpha, mixing_sd
        )
    diff = challenger.mean - champion.mean
    variance = champion.variance / champion.count + challenger.variance / challenger.count
    p = float(always_valid_p_value(diff, variance, mixing_sd))
    half = float(confidence_halfwidth(variance, mixing_sd, alpha))
    low, high = (diff - half, diff + half) if math.isfinite(half) else (None, None)
    if previous.ci_low is not None and low is not None:
        # An empty intersection can only follow a miss of the time-uniform coverage; keep this
        # look's interval rather than show an impossible one.
        if max(low, previous.ci_low) <= min(high, previous.ci_high):
            low, high = max(low, previous.ci_low), min(high, previous.ci_high)
    elif low is None:
        low, high = previous.ci_low, previous.ci_high
    return SequentialDifference(
        difference=diff,
        std_error=math.sqrt(variance),
        p_value=min(p, previous.p_value),
        ci_low=low,
        ci_high=high,
        ci_level=1 - alpha,
        mixing_sd=mixing_sd,
    )


@dataclass(frozen=True)
class Verdict:
    """The decision at this look and a sentence for people.

    ``units_still_needed``: more units per arm to reach a verdict if the current estimate and
    variance hold; ``units_until_certain``: more units per arm after which the interval is at
    most one minimum effect wide, so it must either exclude zero or lie inside +- the minimum
    effect (given the current variance).
    """

    outcome: Outcome
    sentence: str
    units_still_needed: dict[str, int] | None = None
    units_until_certain: dict[str, int] | None = None
    days_still_needed: float | None = None
    guardrails_failed: tuple[str, ...] = ()


def verdict(
    *,
    design: ExperimentDesign,
    plan: SampleSizePlan,
    champion: ArmStats,
    challenger: ArmStats,
    sequential: SequentialDifference,
    srm: SrmResult,
    guardrails: Sequence[GuardrailResult] = (),
) -> Verdict:
    """better / worse: the always-valid interval excludes zero (the metric's direction decides
    which); no_difference: it lies strictly inside +- the minimum effect; not_yet: neither;
    withheld_srm: the split does not match the weights, so no comparison can be trusted."""
    failed = tuple(g.metric for g in guardrails if not g.passed)
    words = _Words(design, champion, challenger, sequential, plan.minimum_effect)
    if srm.flagged:
        return Verdict("withheld_srm", words.withheld(srm.p_value), guardrails_failed=failed)
    low, high = sequential.ci_low, sequential.ci_high
    if sequential.p_value <= design.alpha_per_comparison and low is not None and high is not None:
        up = (low + high) / 2 > 0
        better = up == (design.direction == "higher_is_better")
        outcome: Outcome = "better" if better else "worse"
        return Verdict(
            outcome, words.decided(outcome) + words.guardrails(failed, outcome), guardrails_failed=failed
        )
    mde = plan.minimum_effect
    if low is not None and high is not None and -mde < low and high < mde:
        sentence = words.no_difference() + words.guardrails(failed, "no_difference")
        return Verdict("no_difference", sentence, guardrails_failed=failed)
    needed, certain = _units_needed(plan, champion, challenger, sequential)
    days = _days(plan, needed)
    return Verdict("not_yet", words.not_yet(needed, certain, days), needed, certain, days, failed)


def _units_needed(
    plan: SampleSizePlan, champion: ArmStats, challenger: ArmStats, sequential: SequentialDifference
) -> tuple[dict[str, int], dict[str, int]]:
    arms = (champion, challenger)
    if sequential.std_error is None or sequential.std_error == 0 or sequential.difference is None:
        left = {a.name: max(plan.planned_units.get(a.name, 0) - a.count, 0) for a in arms}
        return left, left
    variance = sequential.std_error**2
    mde, d = plan.minimum_effect, abs(sequential.difference)
    alpha = 1 - sequential.ci_level

    def more(target: float) -> dict[str, int]:
        c = scale_to_halfwidth(variance=variance, tau=sequential.mixing_sd, alpha=alpha, target=target)
        return {a.name: math.ceil((min(c, 1e9) - 1) * a.count) for a in arms}

    return more(max(d, mde - d)), more(mde / 2)


def _days(plan: SampleSizePlan, needed: Mapping[str, int]) -> float | None:
    if not plan.units_per_day:
        return None
    return max(n / (plan.units_per_day * plan.shares[arm]) for arm, n in needed.items() if arm in plan.shares)


@dataclass(frozen=True)
class ComparisonAnalysis:
    """One challenger against the champion at this look."""

    champion: str
    challenger: str
    fixed_horizon: FixedHorizonDifference
    sequential: SequentialDifference
    verdict: Verdict
    guardrails: tuple[GuardrailResult, ...] = ()  # each declared guardrail's result at this look


@dataclass(frozen=True)
class ExperimentAnalysis:
    """Everything one look computes; ``dataclasses.asdict`` gives the JSON snapshot to store."""

    metric_kind: str
    direction: str
    alpha: float
    alpha_per_comparison: float
    arms: tuple[ArmSummary, ...]
    srm: SrmResult
    comparisons: tuple[ComparisonAnalysis, ...]


def analyze_experiment(
    *,
    design: ExperimentDesign,
    plan: SampleSizePlan,
    arms: Sequence[ArmStats],
    srm_epochs: Sequence[WeightEpoch],
    previous: Mapping[str, SequentialState] | None = None,
    guardrails: Mapping[str, Sequence[GuardrailResult]] | None = None,
) -> ExperimentAnalysis:
    """Analyse one look. ``previous`` and ``guardrails`` are keyed by challenger name."""
    by_name = {arm.name: arm for arm in arms}
    missing = [name for name in design.arms if name not in by_name]
    if missing:
        raise ValueError(f"no statistics for arms {missing}")
    alpha_c = design.alpha_per_comparison
    srm = srm_check(epochs=srm_epochs)
    champion = by_name[design.champion]
    comparisons = []
    for name in design.challengers:
        challenger = by_name[name]
        seq = sequential_difference(
            champion, challenger, alpha=alpha_c, mixing_sd=plan.mixing_sd, previous=(previous or {}).get(name)
        )
        comparisons.append(
            ComparisonAnalysis(
                champion=design.champion,
                challenger=name,
                fixed_horizon=fixed_horizon_difference(
                    champion, challenger, kind=design.metric_kind, alpha=alpha_c
                ),
                sequential=seq,
                verdict=verdict(
                    design=design,
                    plan=plan,
                    champion=champion,
                    challenger=challenger,
                    sequential=seq,
                    srm=srm,
                    guardrails=(guardrails or {}).get(name, ()),
                ),
                guardrails=tuple((guardrails or {}).get(name, ())),
            )
        )
    return ExperimentAnalysis(
        metric_kind=design.metric_kind,
        direction=design.direction,
        alpha=design.alpha,
        alpha_per_comparison=alpha_c,
        arms=tuple(arm_summary(by_name[n], kind=design.metric_kind, alpha=design.alpha) for n in design.arms),
        srm=srm,
        comparisons=tuple(comparisons),
    )


def sequential_states(snapshot: Mapping[str, Any]) -> dict[str, SequentialState]:
    """From a stored ``asdict(ExperimentAnalysis)``: the states the next look continues from."""
    return {
        c["challenger"]: SequentialState(
            c["sequential"]["p_value"], c["sequential"]["ci_low"], c["sequential"]["ci_high"]
        )
        for c in snapshot["comparisons"]
    }


class _Words:
    """Sentences for people; numbers as rates in points for 0/1 metrics, 4 digits otherwise."""

    def __init__(
        self,
        design: ExperimentDesign,
        champion: ArmStats,
        challenger: ArmStats,
        seq: SequentialDifference,
        mde: float,
    ) -> None:
        self.d, self.a, self.b, self.s, self.mde = design, champion, challenger, seq, mde
        self.binary = design.metric_kind == "binary"
        self.level = f"{seq.ci_level * 100:.4g} %"

    def value(self, x: float) -> str:
        return f"{x * 100:.2f} %" if self.binary else f"{x:.4g}"

    def diff(self, x: float | None) -> str:
        if x is None:
            return "n/a"
        return f"{x * 100:+.2f} points" if self.binary else f"{x:+.4g}"

    def interval(self) -> str:
        return f"always-valid {self.level} interval {self.diff(self.s.ci_low)} to {self.diff(self.s.ci_high)}"

    def decided(self, outcome: str) -> str:
        return (
            f"Challenger {self.b.name!r} is {outcome} than champion {self.a.name!r}: "
            f"{self.value(self.b.mean)} vs {self.value(self.a.mean)}, difference {self.diff(self.s.difference)} "
            f"({self.interval()}). This holds however often the results were looked at."
        )

    def no_difference(self) -> str:
        return (
            f"No difference of the minimum effect ({self.diff(self.mde).lstrip('+')}) or more: "
            f"the {self.interval()} rules out such an effect either way between {self.b.name!r} and {self.a.name!r}."
        )

    def not_yet(self, needed: Mapping[str, int], certain: Mapping[str, int], days: float | None) -> str:
        more = " and ".join(f"{n:,} more units on {arm!r}" for arm, n in needed.items())
        most = " and ".join(f"{n:,} on {arm!r}" for arm, n in certain.items())
        when = f" (about {days:.1f} days at the planned traffic)" if days is not None else ""
        return (
            f"No difference detectable yet between {self.b.name!r} and {self.a.name!r}: "
            f"difference so far {self.diff(self.s.difference)} ({self.interval()}). "
            f"About {more}{when} should reach a verdict if the current estimate holds; "
            f"{most} more make one certain."
        )

    def withheld(self, p: float) -> str:
        return (
            f"Verdict withheld: units per arm do not match the traffic weights (sample ratio mismatch, "
            f"p = {p:.2g} < 0.001). Some units are lost or misrouted, so any difference may be an artefact: "
            f"find the cause before reading results."
        )

    def guardrails(self, failed: tuple[str, ...], outcome: str) -> str:
        if not failed:
            return ""
        note = " Do not promote on the primary metric alone." if outcome == "better" else ""
        return f" Guardrails failed: {', '.join(failed)}.{note}"
