"""Thompson-sampling bandit: posteriors from per-arm sufficient statistics -> integer weights.

The controller (a periodic task in the app) calls ``bandit_weights`` with each arm's statistics
and the weights now in force, and writes the returned weights through the ordinary traffic
service; the hot path stays a weight lookup. Pure and Django-free; randomness only through the
``numpy.random.Generator`` passed in, so a seeded run is reproducible.

Posteriors:
- 0/1 outcome: Beta(1 + successes, 1 + failures) (uniform prior).
- numeric outcome: the mean under a normal model with unknown variance and the reference prior
  p(mu, sigma^2) ~ 1/sigma^2, i.e. the Normal-Gamma posterior in its non-informative limit:
  mu | data ~ mean + sd/sqrt(n) * Student-t(n - 1). No prior scale to pick per metric.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from experiments.statistics import ArmStats, Direction, MetricKind


@dataclass(frozen=True)
class BanditConfig:
    """How the controller turns posteriors into weights.

    ``floor``: every arm keeps at least this share (percent), so the posterior of a losing arm
    keeps learning and a wrong early lead can be overturned. ``max_step``: no arm's share moves
    by more than this many percentage points per controller step, so one noisy step cannot swing
    the traffic. ``min_outcomes``: until every arm has this many outcomes the weights stay put.
    """

    metric_kind: MetricKind
    direction: Direction = "higher_is_better"
    floor: int = 5
    max_step: int = 10
    min_outcomes: int = 30
    draws: int = 10_000

    def __post_init__(self) -> None:
        if self.metric_kind not in ("binary", "continuous"):
            raise ValueError(f"metric_kind must be 'binary' or 'continuous', got {self.metric_kind!r}")
        if self.direction not in ("higher_is_better", "lower_is_better"):
            raise ValueError(
                f"direction must be 'higher_is_better' or 'lower_is_better', got {self.direction!r}"
            )
        if not (0 <= self.floor <= 50 and 1 <= self.max_step <= 100):
            raise ValueError("floor must be in 0..50 and max_step in 1..100 (percentage points)")
        if self.draws < 100 or self.min_outcomes < 2:
            raise ValueError("draws must be >= 100 and min_outcomes >= 2")


@dataclass(frozen=True)
class BanditStep:
    """One controller step: each arm's probability of being best, where the weights would go
    without the cap (``target``), and the weights to set now (integers summing to 100)."""

    probability_best: dict[str, float]
    target: dict[str, int]
    weights: dict[str, int]
    warming_up: bool


def posterior_draws(
    arm: ArmStats, *, metric_kind: MetricKind, rng: np.random.Generator, draws: int
) -> np.ndarray:
    """Draws from the posterior of the arm's mean outcome."""
    if metric_kind == "binary":
        return rng.beta(1.0 + arm.total, 1.0 + arm.count - arm.total, size=draws)
    if arm.count < 2:
        raise ValueError(f"arm {arm.name!r}: a numeric posterior needs at least 2 outcomes")
    scale = math.sqrt(arm.variance / arm.count)
    return arm.mean + scale * rng.standard_t(arm.count - 1, size=draws)


def probability_best(
    arms: Sequence[ArmStats],
    *,
    metric_kind: MetricKind,
    direction: Direction,
    rng: np.random.Generator,
    draws: int,
) -> dict[str, float]:
    """Monte Carlo share of joint posterior draws in which each arm has the best mean."""
    samples = np.column_stack(
        [posterior_draws(a, metric_kind=metric_kind, rng=rng, draws=draws) for a in arms]
    )
    best = samples.argmax(axis=1) if direction == "higher_is_better" else samples.argmin(axis=1)
    counts = np.bincount(best, minlength=len(arms))
    return {arm.name: float(counts[i]) / draws for i, arm in enumerate(arms)}


def bandit_weights(
    *,
    arms: Sequence[ArmStats],
    current_weights: Mapping[str, int] | None,
    config: BanditConfig,
    rng: np.random.Generator,
) -> BanditStep:
    """Thompson sampling as weights: target share = floor + (100 - arms*floor) * P(best), then
    a move from the current weights towards it of at most ``max_step`` points per arm."""
    names = [a.name for a in arms]
    if len(set(names)) != len(names) or len(names) < 2:
        raise ValueError("a bandit needs two or more distinctly named arms")
    if config.floor * len(arms) > 100:
        raise ValueError(f"a floor of {config.floor} % for {len(arms)} arms exceeds 100 %")
    current = _current(names, current_weights)
    if min(a.count for a in arms) < config.min_outcomes:
        equal = {n: 1.0 / len(names) for n in names}
        return BanditStep(equal, dict(current), dict(current), warming_up=True)
    probs = probability_best(
        arms, metric_kind=config.metric_kind, direction=config.direction, rng=rng, draws=config.draws
    )
    free = 100 - config.floor * len(names)
    target = round_to_percent({n: config.floor + free * probs[n] for n in names})
    return BanditStep(
        probs, target, capped_move(current, target, config.floor, config.max_step), warming_up=False
    )


def capped_move(
    current: Mapping[str, int], target: Mapping[str, int], floor: int, max_step: int
) -> dict[str, int]:
    """Move along the straight line from ``current`` to ``target`` until some arm has moved
    ``max_step`` points. Both sum to 100 and both respect the floor, so every point on the line
    does too, and rounding to whole points keeps all three (each arm rounds between two integers
    that lie within the cap). Current weights that break the floor jump straight to the target:
    the floor is the safety rule, the cap only smooths."""
    gap = max(abs(target[n] - current[n]) for n in target)
    if gap == 0:
        return dict(target)
    if min(current.values()) < floor:
        return dict(target)
    share = min(1.0, max_step / gap)
    return round_to_percent({n: current[n] + share * (target[n] - current[n]) for n in target})


def round_to_percent(shares: Mapping[str, float]) -> dict[str, int]:
    """Largest-remainder rounding of shares that sum to 100: each rounds down or up, sum kept."""
    floors = {n: math.floor(v + 1e-9) for n, v in shares.items()}
    left = 100 - sum(floors.values())
    by_remainder = sorted(shares, key=lambda n: shares[n] - floors[n], reverse=True)
    for n in by_remainder[:left]:
        floors[n] += 1
    return floors


def _current(names: Sequence[str], weights: Mapping[str, int] | None) -> dict[str, int]:
    """The weights in force over these arms; an equal split when unknown or not summing to 100."""
    if weights and set(weights) == set(names) and sum(weights.values()) == 100:
        return {n: int(weights[n]) for n in names}
    return round_to_percent({n: 100 / len(names) for n in names})


def regret(*, units: Mapping[str, int], true_means: Mapping[str, float], direction: Direction) -> float:
    """Expected outcome lost against sending every unit to the truly best arm (simulation
    bookkeeping: only a simulation knows the true means)."""
    pick = max if direction == "higher_is_better" else min
    best = pick(true_means.values())
    return sum(n * abs(best - true_means[arm]) for arm, n in units.items())
