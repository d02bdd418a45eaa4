"""Bandit mode: the controller turns outcome feedback into weights (floor, capped moves), audited
compactly by the actor ``bandit``; warming up changes nothing; start and stop are governed."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest
from django.utils import timezone

from delivery.bandits import bandit_start, bandit_stop, bandit_tick
from delivery.models import BanditPolicy
from delivery.services import rollout_start
from experiments.models import Feedback, OutcomeMetric
from registry.models import AuditEvent
from routing.governance.errors import GovernanceError
from routing.governance.services import challenger_start
from routing.models import PredictionLog, Variant

pytestmark = pytest.mark.django_db


@pytest.fixture
def two_arms(endpoint):
    """``ep``: v1 (champion) and v2 (challenger) at 50/50, outcome ``conversion`` (0/1) declared."""
    challenger_start(actor="system", endpoint_name="ep", version=2, percent=50, reason="arm")
    OutcomeMetric.objects.create(endpoint=endpoint, name="conversion", kind="binary")
    return endpoint


def _weights() -> dict[str, int]:
    return dict(
        Variant.objects.filter(endpoint__name="ep", role__in=("champion", "challenger")).values_list(
            "name", "weight"
        )
    )


def _units(variant: str, n: int, rate: float, seed: int) -> None:
    """``n`` units answered by ``variant``, a share ``rate`` of which converted (outcome feedback)."""
    now = timezone.now()
    rng = np.random.default_rng(seed)
    logs, outcomes = [], []
    for i in range(n):
        key = f"{variant}-{seed}-{i}"
        logs.append(
            PredictionLog(
                created_at=now, request_id=key, endpoint="ep", variant=variant, model_name="m",
                model_version=1, inputs={}, outputs=[0], latency_ms=1.0, unit_key_hash=key,
            )
        )  # fmt: skip
        if rng.random() < rate:
            outcomes.append(
                Feedback(
                    endpoint="ep", kind="outcome", unit_key_hash=key, metric="conversion", value=1.0,
                    variant=variant, model_version=1, predicted_at=now, received_at=now,
                )
            )  # fmt: skip
    PredictionLog.objects.bulk_create(logs)
    Feedback.objects.bulk_create(outcomes)


def test_the_controller_moves_weights_towards_the_better_arm_by_at_most_the_cap(two_arms, settings):
    settings.ROLLOUT_TICK_SECONDS = 10
    policy = bandit_start(
        actor="system", endpoint_name="ep", metric="conversion", reason="explore", max_step=10
    )
    _units("v1", 600, 0.10, seed=1)
    _units("v2", 600, 0.20, seed=2)
    now = timezone.now() + timedelta(seconds=1)

    assert bandit_tick(policy_id=policy.pk, now=now, rng=np.random.default_rng(0)) == "changed"
    assert _weights() == {"v1": 40, "v2": 60}
    assert bandit_tick(policy_id=policy.pk, now=now + timedelta(seconds=2)) == "not_due"
    assert (
        bandit_tick(policy_id=policy.pk, now=now + timedelta(seconds=6), rng=np.random.default_rng(1))
        == "changed"
    )
    assert _weights() == {"v1": 30, "v2": 70}

    rows = AuditEvent.objects.filter(action="routing.traffic_split_set", actor="bandit").order_by("pk")
    assert rows.count() == 2
    assert rows[0].reason.startswith("bandit: v1 50->40, v2 50->60; P(best) v1 0.00 v2 1.00; outcomes v1 600")
    policy.refresh_from_db()
    assert policy.changes == 2 and policy.last_evaluation["target"] == {"v1": 5, "v2": 95}
    assert policy.regret > 0


def test_the_floor_holds_however_sure_the_posterior_is(two_arms, settings):
    settings.ROLLOUT_TICK_SECONDS = 1
    policy = bandit_start(
        actor="system", endpoint_name="ep", metric="conversion", reason="r", floor=10, max_step=100
    )
    _units("v1", 800, 0.05, seed=3)
    _units("v2", 800, 0.30, seed=4)

    bandit_tick(policy_id=policy.pk, now=timezone.now() + timedelta(seconds=1), rng=np.random.default_rng(2))

    assert _weights() == {"v1": 10, "v2": 90}


def test_until_every_arm_has_enough_outcomes_nothing_changes(two_arms):
    policy = bandit_start(
        actor="system", endpoint_name="ep", metric="conversion", reason="r", min_outcomes=100
    )
    _units("v1", 500, 0.1, seed=5)
    _units("v2", 50, 0.9, seed=6)

    assert bandit_tick(policy_id=policy.pk, now=timezone.now() + timedelta(seconds=1)) == "warming_up"

    assert _weights() == {"v1": 50, "v2": 50}
    assert not AuditEvent.objects.filter(actor="bandit").exists()


def test_start_and_stop_are_governed_and_exclusive_with_a_rollout_plan(two_arms, scientist, db):
    from tests.routing.helpers import role_user

    with pytest.raises(GovernanceError) as unknown:
        bandit_start(actor="system", endpoint_name="ep", metric="revenue", reason="r")
    assert unknown.value.status == 400
    with pytest.raises(GovernanceError) as forbidden:
        bandit_start(actor=role_user("viewer"), endpoint_name="ep", metric="conversion", reason="r")
    assert forbidden.value.status == 403
    bandit_start(actor=scientist, endpoint_name="ep", metric="conversion", reason="r")
    with pytest.raises(GovernanceError) as twice:
        bandit_start(actor=scientist, endpoint_name="ep", metric="conversion", reason="r")
    assert twice.value.status == 409
    with pytest.raises(GovernanceError) as plan:
        rollout_start(actor=scientist, endpoint_name="ep", version=3, steps=[5], bake_seconds=0, reason="r")
    assert plan.value.status == 409

    stopped = bandit_stop(actor=scientist, endpoint_name="ep", reason="enough")

    assert not stopped.is_active and _weights() == {"v1": 50, "v2": 50}
    assert list(
        AuditEvent.objects.filter(object_type="bandit_policy").order_by("pk").values_list("action", flat=True)
    ) == [
        "delivery.bandit_started",
        "delivery.bandit_stopped",
    ]
    assert BanditPolicy.objects.filter(is_active=True).count() == 0


def test_the_bandit_series_are_on_metrics(two_arms, client):
    policy = bandit_start(actor="system", endpoint_name="ep", metric="conversion", reason="r")
    _units("v1", 300, 0.1, seed=7)
    _units("v2", 300, 0.2, seed=8)
    bandit_tick(policy_id=policy.pk, now=timezone.now() + timedelta(seconds=1), rng=np.random.default_rng(3))

    text = client.get("/metrics").content.decode()

    assert 'controlplane_bandit_probability_best{endpoint="ep",variant="v2"}' in text
    assert 'controlplane_bandit_outcomes{endpoint="ep",variant="v1"} 300.0' in text
    assert 'controlplane_bandit_regret{endpoint="ep"}' in text


def test_the_api_starts_and_stops_a_bandit_and_refuses_bad_input(two_arms, scientist):
    from rest_framework.test import APIClient

    api = APIClient()
    api.force_authenticate(scientist)
    bad = api.post(
        "/api/v1/bandits/",
        {"endpoint": "ep", "metric": "conversion", "floor": 80, "reason": "r"},
        format="json",
    )
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid"
    started = api.post(
        "/api/v1/bandits/", {"endpoint": "ep", "metric": "conversion", "reason": "r"}, format="json"
    )
    assert started.status_code == 201, started.content
    policy = started.json()
    assert policy["is_active"] and policy["floor"] == 5

    stopped = api.post(f"/api/v1/bandits/{policy['id']}/stop/", {"reason": "done"}, format="json")

    assert stopped.status_code == 200 and stopped.json()["is_active"] is False
    assert (
        api.post(f"/api/v1/bandits/{policy['id']}/stop/", {"reason": "again"}, format="json").status_code
        == 409
    )


def test_a_simulated_stream_through_the_controller_gives_the_better_arm_80_percent_within_the_stated_bound(
    two_arms, settings
):
    """Conversion 50 % vs 55 %: units arrive by the weights in force, 500 outcomes per tick; the
    docs state the better arm passes 80 % within 10,000 outcomes, never an arm below the floor."""
    from experiments.bandit import regret

    settings.ROLLOUT_TICK_SECONDS = 1
    policy = bandit_start(actor="system", endpoint_name="ep", metric="conversion", reason="sim")
    rates, rng = {"v1": 0.50, "v2": 0.55}, np.random.default_rng(14)
    served = {"v1": 0, "v2": 0}
    now, seen, history = timezone.now(), 0, []
    while _weights()["v2"] <= 80:
        assert seen < 10_000, f"v2 still at {_weights()['v2']} % after {seen} outcomes: {history}"
        weights = _weights()
        for arm, n in zip(
            ("v1", "v2"), rng.multinomial(500, [weights["v1"] / 100, weights["v2"] / 100]), strict=True
        ):
            _units(arm, int(n), rates[arm], seed=int(rng.integers(1 << 30)))
            served[arm] += int(n)
        seen += 500
        now += timedelta(seconds=1)
        bandit_tick(policy_id=policy.pk, now=now, rng=rng)
        history.append(_weights()["v2"])
        assert min(_weights().values()) >= 5

    lost = regret(units=served, true_means=rates, direction="higher_is_better")
    fixed = regret(units={"v1": seen // 2, "v2": seen // 2}, true_means=rates, direction="higher_is_better")
    print(f"bandit through the controller: v2 above 80 % after {seen} outcomes ({history}); "
          f"regret {lost:.1f} vs fixed 50/50 {fixed:.1f}")  # fmt: skip
    assert lost < fixed
