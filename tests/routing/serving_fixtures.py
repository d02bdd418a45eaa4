"""Fixtures for /predict tests: endpoints built from the session's real models, tokens, a client.

A test module defines its ``serving`` fixture by calling ``start_serving(settings)``.
The routing table and prediction log run synchronously here (``serving`` turns their
background threads off), so a test decides when the table refreshes and when the log flushes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from django.core.cache import cache
from django.test import Client

from registry.models import ModelVersion
from registry.services import registry_sync
from routing import table
from routing.prediction_log import BUFFER

__all__ = ["Serving", "breast_rows", "start_serving"]


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
        from routing.tokens import service_token_create

        kwargs.setdefault("all_endpoints", not kwargs.get("endpoints"))
        return service_token_create(name=name, **kwargs)[1]

    def refresh(self) -> table.Snapshot:
        return table.TABLE.refresh()

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
    """Call from a module's ``serving`` fixture (which also asks for db, mlflow_server, trained_models)."""
    settings.ROUTING_REFRESH_IN_BACKGROUND = False
    settings.PREDICTION_LOG_IN_BACKGROUND = False
    table.TABLE._snapshot = None  # the previous test's database is gone
    BUFFER.reset()  # entries of earlier tests belong to their (rolled back) database
    # Rate-limit counters are keyed by token id, and SQLite reuses ids after a rollback: a
    # counter left by an earlier test in the same second would throttle this one's token.
    cache.clear()
    return Serving(Client())
