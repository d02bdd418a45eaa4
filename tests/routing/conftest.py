"""Fixtures for routing's governance tests: a fresh registered model per test, users per role."""

from __future__ import annotations

import importlib
import itertools
import os
from dataclasses import dataclass

import pytest
from django.apps import apps as django_apps
from django.contrib.auth.models import Group, User

from registry.models import RegisteredModel
from registry.services import registry_sync
from routing.permissions import ROLE_GROUPS
from tests.conftest import clone_version

_counter = itertools.count(1)


@dataclass(frozen=True)
class FreshModel:
    """A registered model of its own (so MLflow aliases never leak between tests)."""

    name: str
    sklearn_versions: tuple[int, ...]  # versions cloned from the scikit-learn model
    xgboost_versions: tuple[int, ...]  # versions cloned from the XGBoost model

    @property
    def row(self) -> RegisteredModel:
        return RegisteredModel.objects.get(name=self.name)


def make_model(client, trained_models, layout: str = "sxs", sync: bool = True) -> FreshModel:
    """Register ``layout`` (s = scikit-learn, x = XGBoost) as versions 1.. of a new model.

    ``sync=False`` touches only MLflow (for module-scoped models); call ``registry_sync`` later.
    """
    name = f"routing-{os.getpid()}-{next(_counter)}"
    client.create_registered_model(name)
    src = {
        "s": client.get_model_version(trained_models.sklearn_name, str(trained_models.sklearn_version)),
        "x": client.get_model_version(trained_models.xgboost_name, str(trained_models.xgboost_version)),
    }
    for kind in layout:
        clone_version(client, name, src[kind])
    if sync:
        registry_sync(model_name=name)
    return FreshModel(
        name,
        tuple(i for i, k in enumerate(layout, 1) if k == "s"),
        tuple(i for i, k in enumerate(layout, 1) if k == "x"),
    )


@pytest.fixture
def fresh_model(mlflow_server, trained_models) -> FreshModel:
    """Versions 1 and 3 are scikit-learn, version 2 is XGBoost; all READY, mirrored."""
    return make_model(mlflow_server.client(), trained_models)


def role_groups_ensure() -> None:
    """Recreate the role groups of migration 0001 (a transactional test's flush deletes them)."""
    if Group.objects.filter(name__in=ROLE_GROUPS).count() < len(ROLE_GROUPS):
        migration = importlib.import_module("routing.migrations.0001_initial")
        migration.create_role_groups(django_apps, None)


def role_user(username: str, *groups: str, staff: bool = True) -> User:
    role_groups_ensure()
    user = User.objects.create_user(username, password="pw-" + username, is_staff=staff)
    for g in groups:
        user.groups.add(Group.objects.get(name=g))
    return user


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
