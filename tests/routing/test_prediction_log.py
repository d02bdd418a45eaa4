"""Prediction-log retention: prune_predictions deletes only rows older than N days."""

from __future__ import annotations

import datetime as dt

import pytest
from django.core.management import call_command
from django.utils import timezone

from routing.models_serving import PredictionLog

pytestmark = pytest.mark.django_db


def _row(days_old: float, request_id: str) -> PredictionLog:
    return PredictionLog.objects.create(
        created_at=timezone.now() - dt.timedelta(days=days_old),
        request_id=request_id,
        endpoint="e",
        variant="v",
        model_name="m",
        model_version=1,
        inputs=[{"a": 1.0}],
        outputs=[0],
        latency_ms=0.5,
    )


def test_prune_predictions_deletes_only_rows_older_than_the_cutoff(capsys):
    _row(40, "old")
    _row(31, "older-than-30")
    _row(29, "recent")
    _row(0, "today")
    call_command("prune_predictions", "--older-than-days", "30")
    assert "deleted 2" in capsys.readouterr().out
    assert set(PredictionLog.objects.values_list("request_id", flat=True)) == {"recent", "today"}
