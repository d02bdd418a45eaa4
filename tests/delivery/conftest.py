"""Fixtures for delivery's tests: a fresh model and endpoint, users per role, log rows per variant."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from django.contrib.auth.models import User
from django.utils import timezone

from routing.governance.services import endpoint_create
from routing.models import PredictionLog
from tests.routing.helpers import FreshModel, make_model, role_user


@pytest.fixture
def fresh_model(mlflow_server, trained_models) -> FreshModel:
    """Versions 1 and 3 are scikit-learn, version 2 is XGBoost; all READY, mirrored."""
    return make_model(mlflow_server.client(), trained_models)


@pytest.fixture
def endpoint(fresh_model):
    """Endpoint ``ep`` serving v1 as champion with all traffic."""
    return endpoint_create(
        actor="system", name="ep", model_name=fresh_model.name, champion_version=1, reason="launch"
    )


@pytest.fixture
def scientist(db) -> User:
    return role_user("dana", "data scientist")


@pytest.fixture
def approver(db) -> User:
    return role_user("abel", "approver")


def log_rows(
    variant: str,
    n: int,
    *,
    latency_ms: float = 2.0,
    failed: bool = False,
    champion: str = "v1",
    at: datetime | None = None,
    endpoint: str = "ep",
) -> None:
    """``n`` answered requests of ``variant`` as the prediction-log writer stores them.

    ``failed``: ``variant`` failed and the champion answered (the data plane's fallback row).
    """
    at = at or timezone.now() + timedelta(milliseconds=1)
    PredictionLog.objects.bulk_create(
        PredictionLog(
            created_at=at,
            request_id=f"{variant}-{i}-{at.timestamp()}",
            endpoint=endpoint,
            variant=champion if failed else variant,
            model_name="m",
            model_version=1,
            inputs={},
            outputs=[0],
            latency_ms=latency_ms,
            fallback_from=variant if failed else "",
        )
        for i in range(n)
    )


def aliases(mlflow_server, name: str) -> dict[str, int]:
    return {a: int(v) for a, v in mlflow_server.client().get_registered_model(name).aliases.items()}
