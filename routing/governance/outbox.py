"""Apply the alias outbox: push pending ``AliasPush`` rows to MLflow, then update the mirror.

Governance services only write rows (``routing.governance.aliases.alias_push_record``); this is
what a worker runs afterwards (``routing.tasks``). The rules that make it safe:

- **No lock while MLflow is called.** Rows are read in one short transaction, MLflow is called
  with none open, and the result is written in another short transaction.
- **One applier per model.** The applier holds the model's sync lease (``registry.tasks``'s
  per-model ``JobLock``), the same lease the registry syncs take. So two workers never push the
  same model at once, and no sync reads MLflow half-way through a push and reports our own
  change as an "external" one.
- **Idempotent, newest wins.** Aliases are set to the newest open row's desired state (set and
  delete are idempotent); tags of every open row are set in id order. Applying a row twice
  changes nothing.
- **Failures are kept, not lost.** A failed attempt counts on the rows with its error; an
  MLflow outage is retried (task backoff, then beat's ``routing.reconcile_aliases``); an error
  that will not pass by itself (a version gone from MLflow) marks the rows ``failed``, shown on
  the endpoint's admin page and retried by the reconcile.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from registry import mlflow_client
from registry.jobs import job_lease
from registry.models import RegisteredModel
from registry.tasks import model_lease_name
from routing.governance.aliases import ALIASES, alias_put, mirror_update
from routing.models import AliasPush

# Give up automatic retries after this many failed attempts (beat's reconcile still retries).
MAX_ATTEMPTS = 8
# A push never takes long: the lease outlives a stuck MLflow call with its retries.
LEASE_TTL = timedelta(minutes=5)


def alias_pushes_apply(*, model_name: str, holder: str | None = None) -> int | None:
    """Push the model's open rows to MLflow; the number applied, or None when another worker is
    applying them right now (the caller tries again later).

    Raises ``MlflowUnavailable`` after recording the failed attempt on the rows.
    """
    with job_lease(
        name=model_lease_name(model_name), holder=holder or uuid.uuid4().hex, ttl=LEASE_TTL
    ) as mine:
        if not mine:
            return None
        rows = list(
            AliasPush.objects.filter(registered_model__name=model_name, status__in=AliasPush.OPEN).order_by(
                "id"
            )
        )
        if not rows:
            return 0
        try:
            tags = _push(model_name, rows)
        except (mlflow_client.MlflowUnavailable, mlflow_client.MlflowNotFound) as exc:
            _attempt_failed(rows, exc)
            if isinstance(exc, mlflow_client.MlflowNotFound):
                return 0  # not transient: shown as failed, retried by the reconcile only
            raise
        _applied(model_name, rows, tags)
        return len(rows)


def _push(model_name: str, rows: list[AliasPush]) -> dict[str, dict[str, str]]:
    tags: dict[str, dict[str, str]] = {}
    for alias in ALIASES:
        alias_put(model_name, alias, rows[-1].aliases.get(alias))
    for row in rows:
        for version, pairs in row.tags.items():
            for key, value in pairs.items():
                mlflow_client.version_tag_set(name=model_name, version=int(version), key=key, value=value)
            tags.setdefault(version, {}).update(pairs)
    return tags


def _attempt_failed(rows: list[AliasPush], exc: Exception) -> None:
    now = timezone.now()
    with transaction.atomic():
        for row in AliasPush.objects.select_for_update().filter(pk__in=[r.pk for r in rows]):
            row.attempts += 1
            row.last_attempt_at, row.last_error = now, str(exc)[:2000]
            gave_up = row.attempts >= MAX_ATTEMPTS or isinstance(exc, mlflow_client.MlflowNotFound)
            row.status = AliasPush.Status.FAILED if gave_up else AliasPush.Status.PENDING
            row.save(update_fields=["attempts", "last_attempt_at", "last_error", "status"])


def _applied(model_name: str, rows: list[AliasPush], tags: dict[str, dict[str, str]]) -> None:
    now = timezone.now()
    with transaction.atomic():
        AliasPush.objects.filter(pk__in=[r.pk for r in rows]).update(
            status=AliasPush.Status.APPLIED, applied_at=now, last_attempt_at=now, last_error=""
        )
        model = RegisteredModel.objects.select_for_update().get(name=model_name)
        mirror_update(model, {a: rows[-1].aliases.get(a) for a in ALIASES}, tags)


def alias_pushes_open_models() -> list[str]:
    """Names of models with pushes not yet applied (pending or failed), for the reconcile."""
    return sorted(
        set(
            AliasPush.objects.filter(status__in=AliasPush.OPEN).values_list(
                "registered_model__name", flat=True
            )
        )
    )
