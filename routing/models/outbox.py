"""The alias outbox: MLflow alias and tag changes decided by governance, waiting to be applied.

A governance service writes an ``AliasPush`` row in the same transaction as the change it
records, so the two commit or roll back together; a Celery task applies it to MLflow after the
commit (``routing.governance.outbox``). Rows are kept after they are applied, as the history of
what was pushed and when.
"""

from __future__ import annotations

from django.db import models


class AliasPush(models.Model):
    """One push of a registered model's ``champion``/``challenger`` aliases and version tags.

    ``aliases`` is the desired state after the change (alias -> version, ``None``: removed);
    ``tags`` the version tags the change sets (version as a string -> {key: value}). Pending
    rows are applied in id order, so the newest decision is what MLflow ends with.
    """

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        APPLIED = "applied", "Applied"
        FAILED = "failed", "Failed"

    OPEN = (Status.PENDING, Status.FAILED)

    registered_model = models.ForeignKey(
        "registry.RegisteredModel", on_delete=models.CASCADE, related_name="alias_pushes"
    )
    endpoint = models.ForeignKey(
        "routing.Endpoint", on_delete=models.SET_NULL, null=True, blank=True, related_name="alias_pushes"
    )
    action = models.CharField(max_length=64, help_text="The governance change that wrote it.")
    aliases = models.JSONField(default=dict)
    tags = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    applied_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["status", "registered_model"], name="aliaspush_open_idx")]

    def __str__(self) -> str:
        return f"{self.action} -> {self.aliases} ({self.status})"
