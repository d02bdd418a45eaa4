"""Fixtures for routing's tests: a fresh registered model per test, users per role, /predict rig.

``serving`` runs the routing table and the prediction log synchronously (their background
threads off), so a test decides when the table refreshes and when the log flushes.
"""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User

from tests.routing.helpers import FreshModel, Serving, make_model, role_user, start_serving


@pytest.fixture
def fresh_model(mlflow_server, trained_models) -> FreshModel:
    """Versions 1 and 3 are scikit-learn, version 2 is XGBoost; all READY, mirrored."""
    return make_model(mlflow_server.client(), trained_models)


@pytest.fixture
def serving(settings, db, mlflow_server, trained_models) -> Serving:
    """Endpoints built from the session's real models, tokens, and a client for /predict."""
    return start_serving(settings)


@pytest.fixture
def scientist(db) -> User:
    return role_user("dana", "data scientist")


@pytest.fixture
def approver(db) -> User:
    return role_user("abel", "approver")


@pytest.fixture
def sre(db) -> User:
    return role_user("sam", "SRE")


@pytest.fixture
def admin_user_all(db) -> User:
    return User.objects.create_superuser("root", password="pw-root")
