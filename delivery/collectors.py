"""Rollout gauges read from the database at scrape time (like ``monitoring.collectors``).

``controlplane_rollout_step{endpoint,variant}``: the challenger's share (percent) at the current
step of every active plan; ``controlplane_rollout_deadline_timestamp_seconds``: when that step
(or the awaited approval) becomes overdue, for the held-past-deadline alert;
``controlplane_rollout_status{endpoint,variant,status}``: 1 per active plan. Bandit mode, per arm of
every active bandit at its last evaluation: ``controlplane_bandit_probability_best``,
``controlplane_bandit_outcomes``; per endpoint ``controlplane_bandit_regret`` (outcome lost against
the arm with the best observed mean). Shares are ``controlplane_traffic_weight``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

logger = logging.getLogger(__name__)

LABELS = ["endpoint", "variant"]
COLLECTED_METRICS = {
    "controlplane_rollout_step": "gauge",
    "controlplane_rollout_deadline_timestamp_seconds": "gauge",
    "controlplane_rollout_status": "gauge",
    "controlplane_bandit_probability_best": "gauge",
    "controlplane_bandit_outcomes": "gauge",
    "controlplane_bandit_regret": "gauge",
}


def _families() -> dict[str, GaugeMetricFamily]:
    return {
        "step": GaugeMetricFamily(
            "controlplane_rollout_step",
            "Challenger share (percent) at the current step of the endpoint's active rollout plan.",
            labels=LABELS,
        ),
        "deadline": GaugeMetricFamily(
            "controlplane_rollout_deadline_timestamp_seconds",
            "Unix time when the plan's current step (or its awaited approval) is held too long.",
            labels=LABELS,
        ),
        "status": GaugeMetricFamily(
            "controlplane_rollout_status",
            "1 for every active rollout plan; status is running, paused or awaiting_approval.",
            labels=[*LABELS, "status"],
        ),
        "best": GaugeMetricFamily(
            "controlplane_bandit_probability_best",
            "Bandit mode: posterior probability that the arm has the best outcome, at the last evaluation.",
            labels=LABELS,
        ),
        "outcomes": GaugeMetricFamily(
            "controlplane_bandit_outcomes",
            "Bandit mode: units with an outcome counted for the arm since the bandit started.",
            labels=LABELS,
        ),
        "regret": GaugeMetricFamily(
            "controlplane_bandit_regret",
            "Bandit mode: outcome lost against the arm with the best observed mean since the bandit started.",
            labels=["endpoint"],
        ),
    }


def _add_bandits(families: dict[str, GaugeMetricFamily]) -> None:
    from delivery.models import BanditPolicy

    for policy in BanditPolicy.objects.filter(is_active=True).select_related("endpoint"):
        name, last = policy.endpoint.name, policy.last_evaluation or {}
        for arm, p in (last.get("probability_best") or {}).items():
            families["best"].add_metric([name, arm], p)
        for arm, n in (last.get("outcomes") or {}).items():
            families["outcomes"].add_metric([name, arm], n)
        families["regret"].add_metric([name], policy.regret)


class RolloutCollector(Collector):
    """Active plans' step, deadline and status."""

    def describe(self) -> Iterator[GaugeMetricFamily]:
        yield from _families().values()  # no database query at registration

    def collect(self) -> Iterator[GaugeMetricFamily]:
        from delivery.models import RolloutPlan

        families = _families()
        try:
            plans = RolloutPlan.objects.filter(status__in=RolloutPlan.ACTIVE).select_related(
                "endpoint", "variant"
            )
            for plan in plans:
                labels = [plan.endpoint.name, plan.variant.name]
                families["step"].add_metric(labels, plan.percent)
                families["deadline"].add_metric(labels, plan.deadline().timestamp())
                families["status"].add_metric([*labels, plan.status], 1)
            _add_bandits(families)
        except Exception:  # a scrape must still answer when the database is away
            logger.exception("reading rollout plans for /metrics failed")
            families = _families()
        yield from families.values()


ROLLOUT_COLLECTOR = RolloutCollector()
