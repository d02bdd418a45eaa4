"""The MLflow side of a routing change: move the aliases, tag the versions, update the mirror.

Called by ``routing.services`` and ``routing.promotion`` inside the service's transaction, so
when MLflow cannot be reached the ``GovernanceError`` it raises rolls the whole change back.
Aliases it had already moved are put back where they were (best effort;
``endpoint_aliases_reconcile`` pushes the database's truth again after an outage that cut a
change short).
"""

from __future__ import annotations

import datetime as dt

from django.utils import timezone

from registry import mlflow_client
from registry.models import RegisteredModel
from routing.errors import GovernanceError
from routing.models import Endpoint, Variant
from routing.permissions import Actor

Role = Variant.Role
TAG_PREFIX = "controlplane."
ALIASES = ("champion", "challenger")


def _actor_name(actor: Actor) -> str:
    return actor if isinstance(actor, str) else actor.get_username()


def desired_aliases(endpoint: Endpoint) -> dict[str, int | None]:
    serving = list(endpoint.variants.filter(role__in=Variant.WEIGHTED_ROLES).select_related("model_version"))
    champion = next((v for v in serving if v.role == Role.CHAMPION), None)
    challengers = sorted((v for v in serving if v.role == Role.CHALLENGER), key=lambda v: (-v.weight, v.pk))
    return {
        "champion": champion.model_version.version if champion else None,
        "challenger": challengers[0].model_version.version if challengers else None,
    }


def alias_put(name: str, alias: str, version: int | None) -> None:
    if version is None:
        mlflow_client.alias_delete(name=name, alias=alias)
    else:
        mlflow_client.alias_set(name=name, alias=alias, version=version)


def mlflow_apply(endpoint: Endpoint, actor: Actor, reason: str, changed: list[Variant]) -> None:
    """Move aliases and tag the versions whose role changed, then update the registry mirror."""
    model = RegisteredModel.objects.select_for_update().get(pk=endpoint.registered_model_id)
    before = {a: model.aliases.get(a) for a in ALIASES}
    wanted = desired_aliases(endpoint)
    moved: list[str] = []
    try:
        for alias in ALIASES:
            if before[alias] != wanted[alias]:
                alias_put(model.name, alias, wanted[alias])
                moved.append(alias)
        tags = _tags_apply(model.name, endpoint, actor, reason, changed)
    except mlflow_client.MlflowUnavailable as exc:
        for alias in moved:  # undo what already moved; the transaction undoes the rest
            try:
                alias_put(model.name, alias, before[alias])
            except mlflow_client.MlflowUnavailable:
                pass
        raise GovernanceError(
            "mlflow_unavailable", f"Nothing was changed: MLflow could not be updated. {exc}", status=503
        ) from exc
    mirror_update(model, wanted, tags)


def _tags_apply(
    model_name: str, endpoint: Endpoint, actor: Actor, reason: str, changed: list[Variant]
) -> dict[int, dict[str, str]]:
    now = timezone.now().astimezone(dt.UTC).isoformat(timespec="seconds")
    written: dict[int, dict[str, str]] = {}
    for v in changed:
        tags = {
            f"{TAG_PREFIX}endpoint": endpoint.name,
            f"{TAG_PREFIX}role": v.role,
            f"{TAG_PREFIX}role_changed_by": _actor_name(actor),
            f"{TAG_PREFIX}role_changed_at": now,
            f"{TAG_PREFIX}role_change_reason": reason[:5000],
        }
        if v.role == Role.CHAMPION:
            tags[f"{TAG_PREFIX}promoted_by"] = _actor_name(actor)
            tags[f"{TAG_PREFIX}promoted_at"] = now
            tags[f"{TAG_PREFIX}promotion_reason"] = reason[:5000]
        for key, value in tags.items():
            mlflow_client.version_tag_set(
                name=model_name, version=v.model_version.version, key=key, value=value
            )
        written[v.model_version.version] = tags
    return written


def mirror_update(
    model: RegisteredModel, wanted: dict[str, int | None], tags: dict[int, dict[str, str]]
) -> None:
    # Keeping the mirror equal to MLflow means the next registry_sync sees no "external change".
    aliases = {a: v for a, v in model.aliases.items() if a not in ALIASES}
    aliases.update({a: v for a, v in wanted.items() if v is not None})
    model.aliases = aliases
    model.save(update_fields=["aliases"])
    for mv in model.versions.select_for_update():
        new_aliases = sorted(a for a, v in aliases.items() if v == mv.version)
        new_tags = {**mv.tags, **tags.get(mv.version, {})}
        if new_aliases != mv.aliases or new_tags != mv.tags:
            mv.aliases, mv.tags = new_aliases, new_tags
            mv.save(update_fields=["aliases", "tags"])
