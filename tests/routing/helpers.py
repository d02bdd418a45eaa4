"""Helpers for routing's tests: fresh registered models, users per role, and a /predict rig.

The fixtures that use them are in ``tests/routing/conftest.py``; tests import the plain helpers
(``make_model``, ``role_user``, ``breast_rows``) from here.
"""

from __future__ import annotations

import importlib
import itertools
import json
import os
from dataclasses import dataclass
from typing import Any

from django.apps import apps as django_apps
from django.contrib.auth.models import Group, User
from django.core.cache import cache
from django.test import Client

from registry.models import ModelVersion, RegisteredModel
from registry.services import registry_sync
from routing.governance.permissions import ROLE_GROUPS
from routing.serving import worker_status
from routing.serving.prediction_log import BUFFER
from routing.serving.ratelimit import LIMITER
from routing.serving.table import TABLE, Snapshot
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


def role_groups_ensure() -> None:
    """Recreate the role groups of the migrations (a transactional test's flush deletes them)."""
    if Group.objects.filter(name__in=ROLE_GROUPS).count() < len(ROLE_GROUPS):
        importlib.import_module("routing.migrations.0001_initial").create_role_groups(django_apps, None)
        importlib.import_module("routing.migrations.0005_token_permissions").give_token_permissions(
            django_apps, None
        )
        importlib.import_module("delivery.migrations.0002_role_view_permissions").give_view_permissions(
            django_apps, None
        )


def role_user(username: str, *groups: str, staff: bool = True) -> User:
    role_groups_ensure()
    user = User.objects.create_user(username, password="pw-" + username, is_staff=staff)
    for g in groups:
        user.groups.add(Group.objects.get(name=g))
    return user


def breast_rows(n: int = 3, start: int = 0) -> tuple[list[str], list[list[float]]]:
    """Real rows of the data set the test models were trained on."""
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer(as_frame=True).data
    return list(data.columns), data.iloc[start : start + n].to_numpy().tolist()


@dataclass
class Serving:
    """Helpers bound to one test: build endpoints, issue tokens, call /predict."""

    client: Client

    def endpoint(self, name: str, variants: list[dict[str, Any]], model: str = "test-shared") -> Any:
        """``variants``: dicts with name, role, version, and weight/mirror_percent/backend/remote_url."""
        from routing.models import Endpoint, Variant

        registry_sync(model_name=model)
        versions = {mv.version: mv for mv in ModelVersion.objects.filter(registered_model__name=model)}
        endpoint = Endpoint.objects.create(name=name, registered_model=versions[1].registered_model)
        for spec in variants:
            spec = dict(spec)
            version = spec.pop("version")
            mv = versions.get(version)
            if mv is None:  # a version MLflow does not have: loading it fails for real
                mv = ModelVersion.objects.create(
                    registered_model=versions[1].registered_model,
                    version=version,
                    status="READY",
                    signature_inputs=versions[1].signature_inputs,
                )
            Variant.objects.create(endpoint=endpoint, model_version=mv, **spec)
        return endpoint

    def token(self, name: str = "svc", **kwargs: Any) -> str:
        from routing.governance.tokens import service_token_create

        kwargs.setdefault("all_endpoints", not kwargs.get("endpoints"))
        return service_token_create(actor="system", name=name, **kwargs)[1]

    def refresh(self) -> Snapshot:
        return TABLE.refresh()

    def post(
        self,
        path: str,
        body: Any,
        token: str | None,
        content_type: str = "application/json",
        **headers: str,
    ) -> Any:
        data = body if isinstance(body, (str, bytes)) else json.dumps(body)
        extra = {f"HTTP_{k.upper()}": v for k, v in headers.items()}
        if token is not None:
            extra["HTTP_AUTHORIZATION"] = f"Bearer {token}"
        return self.client.post(path, data=data, content_type=content_type, **extra)


def start_serving(settings: Any) -> Serving:
    """The /predict rig of the ``serving`` fixture: refresh and log writes happen when a test says."""
    settings.ROUTING_REFRESH_IN_BACKGROUND = False
    settings.PREDICTION_LOG_IN_BACKGROUND = False
    TABLE.reset()  # the previous test's database is gone
    worker_status.reset()  # so is the status row this process wrote
    BUFFER.reset()  # entries of earlier tests belong to their (rolled back) database
    # Rate-limit counters are keyed by token id, and SQLite reuses ids after a rollback: a
    # counter left by an earlier test in the same second would throttle this one's token.
    cache.clear()
    LIMITER.reset()
    return Serving(Client())


def alias_pushes_applied(model_name: str, timeout: float = 30) -> None:
    """Wait for the alias outbox of ``model_name``: apply its open pushes here, as a worker does.

    Governance changes reach MLflow after commit (``routing.governance.outbox``); a test that
    reads MLflow's aliases right after a change waits for that. When a real worker holds the
    model's lease, this waits until it is done.
    """
    import time

    from routing.governance.outbox import alias_pushes_apply
    from routing.models import AliasPush

    deadline = time.monotonic() + timeout
    while True:
        applied = alias_pushes_apply(model_name=model_name)
        open_rows = AliasPush.objects.filter(registered_model__name=model_name, status__in=AliasPush.OPEN)
        if applied is not None and not open_rows.exists():
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"alias pushes of {model_name} still open: {list(open_rows.values())}")
        time.sleep(0.1)
