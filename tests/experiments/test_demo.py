"""The demo's experiment step: the demo token may send feedback, one accuracy experiment runs."""

from __future__ import annotations

import pytest

from experiments.demo import demo_experiment_ensure
from experiments.models import Experiment
from registry.models import AuditEvent
from routing.models import ServiceToken

pytestmark = pytest.mark.django_db


def test_the_demo_experiment_starts_once_and_the_demo_token_gains_the_feedback_scope(serving):
    serving.endpoint(
        "demo",
        [
            {"name": "v1", "role": "champion", "version": 1, "weight": 90},
            {"name": "v2", "role": "challenger", "version": 2, "weight": 10},
        ],
    )
    raw = serving.token("demo-demo", endpoints=["demo"])
    first = demo_experiment_ensure(endpoint="demo", raw_token=raw)
    again = demo_experiment_ensure(endpoint="demo", raw_token=raw)
    assert first.pk == again.pk and again.status == "running"
    assert (again.champion, again.challengers, again.primary_metric) == ("v1", ["v2"], "accuracy")
    assert 0.5 < again.baseline_mean < 1  # the champion's logged val_accuracy
    assert again.plan["planned_units"]["v2"] > 0
    assert sorted(ServiceToken.objects.get(name="demo-demo").scopes) == ["feedback", "predict"]
    assert Experiment.objects.count() == 1
    assert AuditEvent.objects.filter(action="experiments.start").count() == 1
