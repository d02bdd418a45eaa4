"""The MLflow side of a routing change: which aliases and version tags it needs, and the mirror.

Called by ``routing.governance.services`` and ``routing.governance.promotion`` inside the
service's transaction: ``mlflow_apply`` only writes an outbox row (``routing.governance.outbox``),
so a governance change never waits on MLflow and succeeds while MLflow is down; a worker pushes
the row after commit and then updates the registry mirror (``mirror_update``).
"""

from __future__ import annotations

import datetime as dt
import logging

from django.db import transaction
from django.utils import timezone

from registry import mlflow_client
from registry.models import RegisteredModel
from routing.governance.permissions import Actor
from routing.models import AliasPush, Endpoint, Variant

log = logging.getLogger(__name__)

Role = Variant.Role
TAG_PREFIX = "controlplane."
ALIASES = ("champion", "challenger")
APPLY_TASK = "routing.apply_alias_pushes"
# Publishing from a web request: fail within about a second when the broker is down.
PUBLISH_RETRY = {"max_retries": 2, "interval_start": 0.2, "interval_step": 0.3, "interval_max": 0.5}


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
    """Record the aliases and version tags this change needs in MLflow, to be pushed after commit.

    The caller's transaction writes the outbox row with its own change, so both commit or
    neither does; MLflow is not called here (``routing.governance.outbox`` applies the row from
    a worker, outside any transaction). The mirror follows when the push is applied.
    """
    alias_push_record(
        endpoint=endpoint,
        aliases=desired_aliases(endpoint),
        tags=_tags_for(endpoint, actor, reason, changed),
        action=_action(changed),
    )


def _action(changed: list[Variant]) -> str:
    roles = ",".join(sorted(f"{v.name}={v.role}" for v in changed))
    return f"roles {roles}"[:64] if changed else "traffic split"


def alias_push_record(
    *, endpoint: Endpoint, aliases: dict[str, int | None], tags: dict[str, dict[str, str]], action: str
) -> AliasPush:
    """Write the outbox row (caller is atomic) and send the task that applies it once committed.

    Sending can fail (broker down): the row stays pending and beat's ``routing.reconcile_aliases``
    applies it later, so the governance change itself never fails for it.
    """
    push = AliasPush.objects.create(
        registered_model_id=endpoint.registered_model_id,
        endpoint=endpoint,
        action=action,
        aliases=aliases,
        tags=tags,
    )
    model_name = endpoint.registered_model.name
    transaction.on_commit(lambda: alias_push_send(model_name))
    return push


def alias_push_send(model_name: str) -> None:
    """Ask a worker to apply the model's open pushes (by task name: governance cannot import tasks)."""
    from celery import current_app as app

    try:
        app.send_task(
            APPLY_TASK, args=(model_name,), retry=True, retry_policy=PUBLISH_RETRY, ignore_result=True
        )
    except Exception:  # the broker is away: beat's reconcile picks the row up
        log.warning(
            "could not send %s(%r); beat's reconcile will apply it", APPLY_TASK, model_name, exc_info=True
        )


def _tags_for(
    endpoint: Endpoint, actor: Actor, reason: str, changed: list[Variant]
) -> dict[str, dict[str, str]]:
    """The version tags a change sets: who changed the role, when and why (version -> tags)."""
    now = timezone.now().astimezone(dt.UTC).isoformat(timespec="seconds")
    written: dict[str, dict[str, str]] = {}
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
        written[str(v.model_version.version)] = tags
    return written


def mirror_update(
    model: RegisteredModel, wanted: dict[str, int | None], tags: dict[str, dict[str, str]]
) -> None:
    # Keeping the mirror equal to MLflow means the next registry_sync sees no "external change".
    aliases = {a: v for a, v in model.aliases.items() if a not in ALIASES}
    aliases.update({a: v for a, v in wanted.items() if v is not None})
    model.aliases = aliases
    model.save(update_fields=["aliases"])
    for mv in model.versions.select_for_update():
        new_aliases = sorted(a for a, v in aliases.items() if v == mv.version)
        new_tags = {**mv.tags, **tags.get(str(mv.version), {})}
        if new_aliases != mv.aliases or new_tags != mv.tags:
            mv.aliases, mv.tags = new_aliases, new_tags
            mv.save(update_fields=["aliases", "tags"])
