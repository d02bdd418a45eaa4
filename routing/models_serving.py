"""What /predict needs in the database: service tokens and the prediction log.

Neither is read on the request path: the routing table's refresher copies active tokens into
memory every second, and prediction-log rows are written in batches by a background thread.
"""

from __future__ import annotations

import hashlib
import secrets

from django.db import models
from django.utils import timezone

__all__ = ["PredictionLog", "ServiceToken", "hash_token"]

TOKEN_PREFIX = "cpt_"


def hash_token(raw: str) -> str:
    """SHA-256 of the raw token: tokens are long random strings, so no salt or slow hash is needed."""
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()


class ServiceToken(models.Model):
    """A bearer token for /predict, stored hashed, scoped to endpoints, revocable.

    The raw token is shown once when created (``service_token_create``) and never stored.
    An empty ``endpoints`` set with ``all_endpoints`` off allows nothing.
    """

    name = models.CharField(max_length=100, unique=True)
    token_hash = models.CharField(max_length=64, unique=True, editable=False)
    prefix = models.CharField(max_length=12, editable=False, help_text="First characters, to recognise it.")
    endpoints = models.ManyToManyField("routing.Endpoint", blank=True, related_name="service_tokens")
    all_endpoints = models.BooleanField(default=False, help_text="Allowed on every endpoint.")
    can_override = models.BooleanField(default=False, help_text="May force a variant with X-Variant.")
    rate_limit_per_second = models.PositiveIntegerField(
        null=True, blank=True, help_text="Requests per second; empty: the default; 0: unlimited."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}...)"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None

    def revoke(self) -> None:
        self.revoked_at = timezone.now()
        self.save(update_fields=["revoked_at"])

    @staticmethod
    def generate() -> str:
        return TOKEN_PREFIX + secrets.token_urlsafe(32)


class PredictionLog(models.Model):
    """One answered (or shadowed) prediction, written in batches off the request path."""

    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    request_id = models.CharField(max_length=128, db_index=True)
    # No index of its own: the (endpoint, variant, created_at) index below serves every lookup by
    # endpoint, and one index fewer is less work for the writer on every row.
    endpoint = models.CharField(max_length=100)
    variant = models.CharField(max_length=100)
    model_name = models.CharField(max_length=256)
    model_version = models.PositiveIntegerField()
    is_shadow = models.BooleanField(default=False)
    inputs = models.JSONField(
        help_text="The scoring request as sent (MLflow format, replayable); CSV as dataframe_split."
    )
    outputs = models.JSONField(help_text="List of predictions, one per row.")
    latency_ms = models.FloatField(help_text="Time in the model.")
    unit_key_hash = models.CharField(max_length=64, blank=True, default="")
    token_name = models.CharField(max_length=100, blank=True, default="")
    agreement = models.FloatField(
        null=True, blank=True, help_text="Shadow only: share of rows where it agreed with the answer."
    )
    fallback_from = models.CharField(
        max_length=100, blank=True, default="", help_text="The variant that failed, when one did."
    )

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["endpoint", "variant", "created_at"])]

    def __str__(self) -> str:
        return f"{self.request_id} {self.endpoint}/{self.variant} v{self.model_version}"
