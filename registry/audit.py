"""Writing audit rows: the one function every service calls inside its own transaction."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser

from controlplane.middleware import current_request_id
from registry.models import AuditEvent

SYSTEM = "system"
MLFLOW = "mlflow"


def audit_record(
    *,
    actor: AbstractBaseUser | AnonymousUser | str | None,
    action: str,
    object_type: str,
    object_id: str | int = "",
    object_repr: str,
    before: Any = None,
    after: Any = None,
    reason: str = "",
    request_id: str | None = None,
) -> AuditEvent:
    """Append one audit row. Call it inside the transaction of the change it records."""
    user = None
    if actor is None or isinstance(actor, AnonymousUser):
        name, kind = SYSTEM, AuditEvent.ActorKind.SYSTEM
    elif isinstance(actor, str):
        name = actor
        kind = AuditEvent.ActorKind.MLFLOW if actor == MLFLOW else AuditEvent.ActorKind.SYSTEM
    else:
        user, name, kind = actor, actor.get_username(), AuditEvent.ActorKind.USER
    return AuditEvent.objects.create(
        actor=name,
        actor_kind=kind,
        user=user,
        action=action,
        object_type=object_type,
        object_id=str(object_id),
        object_repr=object_repr[:300],
        before=before,
        after=after,
        reason=reason,
        request_id=request_id if request_id is not None else current_request_id.get(),
    )
