"""The one module that talks to the MLflow tracking server's registry.

It builds the client once, pages through results, and returns plain dataclasses, so nothing
else in the control plane depends on MLflow's entity classes. Every failure (server down,
timeout, an answer that is not what MLflow should send) becomes ``MlflowUnavailable`` with a
message naming the server.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

from django.conf import settings

T = TypeVar("T")

PAGE_SIZE = 1000
WEBHOOK_EVENTS = [
    "registered_model.created",
    "model_version.created",
    "model_version_tag.set",
    "model_version_tag.deleted",
    "model_version_alias.created",
    "model_version_alias.deleted",
]


class MlflowUnavailable(Exception):
    """MLflow could not be reached or answered something unusable."""


class MlflowNotFound(Exception):
    """MLflow answered that the named object does not exist."""


@dataclass(frozen=True)
class RegisteredModelInfo:
    name: str
    description: str
    tags: dict[str, str]
    aliases: dict[str, int]
    created_ms: int | None
    updated_ms: int | None


@dataclass(frozen=True)
class ModelVersionInfo:
    name: str
    version: int
    status: str
    status_message: str
    description: str
    tags: dict[str, str]
    run_id: str
    source: str
    model_id: str
    created_ms: int | None
    updated_ms: int | None


@dataclass(frozen=True)
class VersionDetails:
    """What MLflow knows about a version beyond the registry row: signature, flavors, run."""

    signature_inputs: list[dict[str, Any]] | None = None
    signature_outputs: list[dict[str, Any]] | None = None
    flavors: list[str] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)
    error: str = ""


def tracking_uri() -> str:
    return settings.MLFLOW_TRACKING_URI


@functools.lru_cache(maxsize=4)
def _client(uri: str) -> Any:
    # A dead server should fail a sync in seconds, not after the client's default minutes
    # of exponential back-off.
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", str(settings.MLFLOW_HTTP_MAX_RETRIES))
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", str(settings.MLFLOW_HTTP_TIMEOUT_SECONDS))
    from mlflow.tracking import MlflowClient

    import mlflow

    # get_model_info and the model loader resolve models:/ URIs through the global URI.
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def client() -> Any:
    """The MLflow client for the configured tracking server, built once per URI."""
    return _client(tracking_uri())


def _call(what: str, fn: Callable[[], T]) -> T:
    from mlflow.exceptions import MlflowException

    try:
        return fn()
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            raise MlflowNotFound(f"{what}: not found in MLflow at {tracking_uri()}") from exc
        raise MlflowUnavailable(f"MLflow at {tracking_uri()} failed to {what}: {exc}") from exc
    except (MlflowUnavailable, MlflowNotFound):
        raise
    except Exception as exc:  # connection errors, timeouts, undecodable answers
        raise MlflowUnavailable(
            f"MLflow at {tracking_uri()} is unreachable or answered garbage while trying to "
            f"{what}: {type(exc).__name__}: {exc}"
        ) from exc


def _paged(what: str, fetch: Callable[[str | None], Any]) -> Iterator[Any]:
    token: str | None = None
    while True:
        page = _call(what, lambda t=token: fetch(t))
        yield from page
        token = page.token
        if not token:
            return


def _model_info(rm: Any) -> RegisteredModelInfo:
    return RegisteredModelInfo(
        name=rm.name,
        description=rm.description or "",
        tags=dict(rm.tags or {}),
        aliases={a: int(v) for a, v in (rm.aliases or {}).items()},
        created_ms=rm.creation_timestamp,
        updated_ms=rm.last_updated_timestamp,
    )


def _model_id_from(source: str, model_id: str | None) -> str:
    if model_id:
        return model_id
    # MLflow 3 REST answers leave model_id empty; the source is models:/m-<id>.
    if source.startswith("models:/m-"):
        return source.removeprefix("models:/").split("/")[0]
    return ""


def _version_info(mv: Any) -> ModelVersionInfo:
    return ModelVersionInfo(
        name=mv.name,
        version=int(mv.version),
        status=str(mv.status),
        status_message=mv.status_message or "",
        description=mv.description or "",
        tags=dict(mv.tags or {}),
        run_id=mv.run_id or "",
        source=mv.source or "",
        model_id=_model_id_from(mv.source or "", getattr(mv, "model_id", None)),
        created_ms=mv.creation_timestamp,
        updated_ms=mv.last_updated_timestamp,
    )


def registered_model_names() -> list[str]:
    """Every registered model's name, paging through the whole registry."""
    c = client()
    pages = _paged(
        "list registered models",
        lambda tok: c.search_registered_models(max_results=PAGE_SIZE, page_token=tok),
    )
    return [rm.name for rm in pages]


def registered_model_get(name: str) -> RegisteredModelInfo:
    """One registered model with its aliases (search results leave aliases empty)."""
    c = client()
    return _model_info(_call(f"get registered model {name!r}", lambda: c.get_registered_model(name)))


def model_versions_list(name: str) -> list[ModelVersionInfo]:
    """All versions of one model, paging; aliases come from ``registered_model_get``."""
    c = client()
    quoted = name.replace("'", "\\'")
    pages = _paged(
        f"list versions of {name!r}",
        lambda tok: c.search_model_versions(
            filter_string=f"name='{quoted}'",
            max_results=PAGE_SIZE,
            order_by=["version_number ASC"],
            page_token=tok,
        ),
    )
    return [_version_info(mv) for mv in pages]


def _schema_json(schema: Any) -> list[dict[str, Any]] | None:
    return None if schema is None else schema.to_dict()


def version_details(source: str, run_id: str) -> VersionDetails:
    """Signature and flavors from the MLmodel file (no weights downloaded), metrics from the run.

    A version whose artifacts lack an MLmodel file is not an outage: its details carry the
    error instead. An unreachable server still raises ``MlflowUnavailable``.
    """
    from mlflow.models import get_model_info

    client()  # sets the global tracking URI get_model_info resolves against
    error = ""
    inputs = outputs = None
    flavors: list[str] = []
    try:
        info = get_model_info(source)
    except Exception as exc:
        if _is_connection(exc):
            raise MlflowUnavailable(
                f"MLflow at {tracking_uri()} is unreachable while reading {source}: {exc}"
            ) from exc
        error = f"no readable MLmodel at {source}: {type(exc).__name__}: {exc}"[:2000]
    else:
        if info.signature is not None:
            inputs = _schema_json(info.signature.inputs)
            outputs = _schema_json(info.signature.outputs)
        flavors = sorted(info.flavors)
    metrics, params = run_metrics_params(run_id) if run_id else ({}, {})
    return VersionDetails(inputs, outputs, flavors, metrics, params, error)


def _is_connection(exc: BaseException) -> bool:
    text = f"{exc} {exc.__cause__}"
    return any(s in text for s in ("Connection", "Max retries", "timed out", "refused"))


def run_metrics_params(run_id: str) -> tuple[dict[str, float], dict[str, str]]:
    c = client()
    try:
        run = _call(f"get run {run_id}", lambda: c.get_run(run_id))
    except MlflowNotFound:
        return {}, {}
    return dict(run.data.metrics), dict(run.data.params)


def alias_set(*, name: str, alias: str, version: int) -> None:
    c = client()
    _call(
        f"set alias {alias!r} of {name!r} to v{version}",
        lambda: c.set_registered_model_alias(name, alias, str(version)),
    )


def alias_delete(*, name: str, alias: str) -> None:
    c = client()
    try:
        _call(f"delete alias {alias!r} of {name!r}", lambda: c.delete_registered_model_alias(name, alias))
    except MlflowNotFound:
        pass  # already gone: the desired state holds


def version_tag_set(*, name: str, version: int, key: str, value: str) -> None:
    c = client()
    _call(
        f"tag {name!r} v{version}",
        lambda: c.set_model_version_tag(name, str(version), key, value),
    )


def webhook_ensure(*, name: str, url: str, secret: str) -> str:
    """Create the control plane's registry webhook, or update it if one of that name exists."""
    c = client()
    existing = [w for w in _paged("list webhooks", lambda t: c.list_webhooks(page_token=t))]
    for hook in existing:
        if hook.name == name:
            _call(
                "update webhook",
                lambda hook=hook: c.update_webhook(
                    hook.webhook_id, url=url, events=WEBHOOK_EVENTS, secret=secret, status="ACTIVE"
                ),
            )
            return hook.webhook_id
    hook = _call(
        "create webhook",
        lambda: c.create_webhook(name=name, url=url, events=WEBHOOK_EVENTS, secret=secret),
    )
    return hook.webhook_id


def run_artifact_json(run_id: str, path: str) -> dict[str, Any] | None:
    """A JSON artifact logged with a run (e.g. the drift reference), or None when it has none."""
    import json
    import tempfile

    c = client()
    listed = _call(f"list artifacts of run {run_id}", lambda: c.list_artifacts(run_id))
    if path not in {a.path for a in listed}:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        local = _call(f"download {path} of run {run_id}", lambda: c.download_artifacts(run_id, path, tmp))
        with open(local, encoding="utf-8") as fh:
            return json.load(fh)
