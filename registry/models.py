"""The mirror of the MLflow model registry, and the append-only audit trail.

MLflow is the source of truth for what a version *is* (its source, signature, run metrics);
these rows are a copy refreshed by ``registry.services.registry_sync``. The audit table lives
here because every other app writes to it and ``registry`` depends on nothing of ours.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models


class RegisteredModel(models.Model):
    """A registered model as MLflow last reported it (name, description, tags, aliases)."""

    name = models.CharField(max_length=256, unique=True)
    description = models.TextField(blank=True, default="")
    tags = models.JSONField(default=dict, blank=True)
    # alias -> version number, read from get_registered_model (search results omit aliases).
    aliases = models.JSONField(default=dict, blank=True)
    mlflow_created_at = models.DateTimeField(null=True, blank=True)
    mlflow_updated_at = models.DateTimeField(null=True, blank=True)
    deleted_in_mlflow = models.BooleanField(
        default=False, help_text="Gone from MLflow; kept here for the audit trail."
    )
    synced_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def mlflow_url(self) -> str:
        """This model's page in the MLflow UI (``MLFLOW_UI_URL``)."""
        return f"{settings.MLFLOW_UI_URL}/#/models/{quote(self.name, safe='')}"


class ModelVersion(models.Model):
    """One version of a registered model, with what serving and governance need to know."""

    class Status(models.TextChoices):
        PENDING_REGISTRATION = "PENDING_REGISTRATION", "Pending registration"
        FAILED_REGISTRATION = "FAILED_REGISTRATION", "Failed registration"
        READY = "READY", "Ready"

    registered_model = models.ForeignKey(RegisteredModel, on_delete=models.PROTECT, related_name="versions")
    version = models.PositiveIntegerField()
    status = models.CharField(max_length=32, choices=Status.choices)
    status_message = models.TextField(blank=True, default="")
    description = models.TextField(blank=True, default="")
    tags = models.JSONField(default=dict, blank=True)
    aliases = models.JSONField(default=list, blank=True)
    run_id = models.CharField(max_length=64, blank=True, default="")
    source = models.CharField(max_length=1024, blank=True, default="")
    model_id = models.CharField(max_length=64, blank=True, default="")
    # Signature as MLflow's schema JSON: a list of {"name", "type", ...} column specs.
    signature_inputs = models.JSONField(null=True, blank=True)
    signature_outputs = models.JSONField(null=True, blank=True)
    flavors = models.JSONField(default=list, blank=True)
    metrics = models.JSONField(default=dict, blank=True)
    params = models.JSONField(default=dict, blank=True)
    # Why signature/metrics are missing when MLflow could not give them for this version.
    details_error = models.TextField(blank=True, default="")
    mlflow_created_at = models.DateTimeField(null=True, blank=True)
    mlflow_updated_at = models.DateTimeField(null=True, blank=True)
    deleted_in_mlflow = models.BooleanField(
        default=False, help_text="Gone from MLflow; kept here for the audit trail."
    )
    synced_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["registered_model__name", "-version"]
        constraints = [
            models.UniqueConstraint(
                fields=["registered_model", "version"], name="registry_version_unique_per_model"
            )
        ]

    def __str__(self) -> str:
        return f"{self.registered_model.name} v{self.version}"

    @property
    def mlflow_url(self) -> str:
        """This version's page in the MLflow UI (``MLFLOW_UI_URL``)."""
        return f"{self.registered_model.mlflow_url}/versions/{self.version}"

    @property
    def is_servable(self) -> bool:
        return self.status == self.Status.READY and not self.deleted_in_mlflow

    @property
    def input_columns(self) -> list[str]:
        return [c.get("name", "") for c in (self.signature_inputs or [])]


class AuditEventQuerySet(models.QuerySet):
    """Bulk ``update()`` and ``delete()`` would go around the row's own refusal; they raise too.

    Django's deletion of a user still nulls ``AuditEvent.user`` (it goes through the base manager,
    not this one): the actor's name stays on the row, only the link to the account goes.
    """

    def update(self, **kwargs: Any) -> int:
        raise ValidationError("Audit events are append-only and cannot be changed.")

    def delete(self) -> tuple[int, dict[str, int]]:
        raise ValidationError("Audit events are append-only and cannot be deleted.")


class AuditEvent(models.Model):
    """An append-only record of a change: who, what, before and after, why, and which request.

    Rows are written in the same transaction as the change they describe, so a change
    without its audit row cannot exist. Updating or deleting a row, one at a time or through
    a queryset, raises.
    """

    class ActorKind(models.TextChoices):
        USER = "user", "User"
        MLFLOW = "mlflow", "MLflow (external change)"
        SYSTEM = "system", "System"

    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    actor = models.CharField(max_length=150, help_text="Username, or 'mlflow' / 'system'.")
    actor_kind = models.CharField(max_length=16, choices=ActorKind.choices)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    action = models.CharField(max_length=64, db_index=True)
    object_type = models.CharField(max_length=64)
    object_id = models.CharField(max_length=64, blank=True, default="")
    object_repr = models.CharField(max_length=300)
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)
    reason = models.TextField(blank=True, default="")
    request_id = models.CharField(max_length=128, blank=True, default="", db_index=True)

    objects = AuditEventQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["object_type", "object_id"])]

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M:%S} {self.actor} {self.action} {self.object_repr}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if self.pk is not None and not self._state.adding:
            raise ValidationError("Audit events are append-only and cannot be changed.")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> Any:
        raise ValidationError("Audit events are append-only and cannot be deleted.")


class JobLock(models.Model):
    """A named lease on a background job, so one worker at a time does it (see ``registry.jobs``).

    Lives here, like the audit table, because every app's tasks take one and ``registry``
    depends on nothing of ours. ``pending_since`` de-duplicates enqueues (a burst of webhook
    deliveries for one model sends one task); ``last_succeeded_at`` lets a periodic job skip a
    duplicate delivery within its period.
    """

    name = models.CharField(max_length=300, unique=True)
    holder = models.CharField(max_length=200, blank=True, default="", help_text="Celery task id.")
    locked_until = models.DateTimeField(null=True, blank=True)
    pending_since = models.DateTimeField(null=True, blank=True)
    last_started_at = models.DateTimeField(null=True, blank=True)
    last_succeeded_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name
