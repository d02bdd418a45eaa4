"""What /predict needs in the database: service tokens, the prediction log, the routing
generation and the workers' status.

None is read on the request path: the routing table's refresher copies active tokens into
memory when the routing generation moves, prediction-log rows are written in batches by a
background thread, and each worker writes its status row off the request path.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from django.conf import settings
from django.db import models
from django.utils import timezone

TOKEN_PREFIX = "cpt_"


def hash_token(raw: str) -> str:
    """SHA-256 of the raw token: tokens are long random strings, so no salt or slow hash is needed."""
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()


def default_scopes() -> list[str]:
    return ["predict"]


class ServiceToken(models.Model):
    """A bearer token for /predict, stored hashed, scoped to endpoints and uses, revocable.

    The raw token is shown once when created (``service_token_create``) and never stored.
    An empty ``endpoints`` set with ``all_endpoints`` off allows nothing. ``scopes`` says what
    the token may call: ``predict`` (/predict), ``feedback`` (/feedback), ``batch`` (batch jobs).
    Every change goes through ``routing.governance.tokens`` (audited, permission-checked).
    """

    class Scope(models.TextChoices):
        PREDICT = "predict", "predict (POST /predict)"
        FEEDBACK = "feedback", "feedback (POST /feedback)"
        BATCH = "batch", "batch (prediction jobs)"

    name = models.CharField(max_length=100, unique=True)
    token_hash = models.CharField(max_length=64, unique=True, editable=False)
    prefix = models.CharField(max_length=12, editable=False, help_text="First characters, to recognise it.")
    endpoints = models.ManyToManyField("routing.Endpoint", blank=True, related_name="service_tokens")
    all_endpoints = models.BooleanField(default=False, help_text="Allowed on every endpoint.")
    can_override = models.BooleanField(default=False, help_text="May force a variant with X-Variant.")
    rate_limit_per_second = models.PositiveIntegerField(
        null=True, blank=True, help_text="Requests per second; empty: the default; 0: unlimited."
    )
    scopes = models.JSONField(
        default=default_scopes, blank=True, help_text="What it may call: predict, feedback, batch."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["name"]
        permissions = [
            ("create_token", "Can create a service token"),
            ("revoke_token", "Can revoke a service token"),
            ("edit_token_scope", "Can change a service token's endpoints, scopes and limits"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}...)"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None

    def has_scope(self, scope: str) -> bool:
        return scope in (self.scopes or [])

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


# --- Serving resilience (issue 10): when to rebuild the routing table, and what each worker holds.


class RoutingGeneration(models.Model):
    """One row: a counter bumped by every write to a table the routing table is built from.

    Database triggers (migration ``0004``) bump it in the writing transaction, on endpoints,
    variants, service tokens and the tokens' endpoint scopes, so services, the admin, bulk
    ``update()`` calls and a ``manage.py shell`` all count, and a rolled-back change never does.
    Each worker's refresher reads this one row per period and rebuilds only when it moved.
    Changes to the registry mirror (a version's signature) are picked up with the next routing
    change.
    """

    id = models.PositiveSmallIntegerField(primary_key=True, default=1)
    value = models.BigIntegerField(default=0)

    class Meta:
        verbose_name = "routing generation"

    def __str__(self) -> str:
        return f"generation {self.value}"

    @classmethod
    def current(cls) -> int:
        """The counter now (0 when the row is missing: a flushed test database)."""
        return cls.objects.filter(pk=1).values_list("value", flat=True).first() or 0


class WorkerStatusQuerySet(models.QuerySet):
    def live(self) -> WorkerStatusQuerySet:
        """Rows whose heartbeat is younger than ``WORKER_STATUS_STALE_SECONDS`` (the others are gone)."""
        stale = timedelta(seconds=settings.WORKER_STATUS_STALE_SECONDS)
        return self.filter(heartbeat_at__gte=timezone.now() - stale)


class WorkerStatus(models.Model):
    """What one serving worker process holds: the versions it loaded and those that failed, and why.

    Written by the worker itself (``routing.serving.worker_status``), never on the request path:
    when what it holds changes and as a heartbeat. Governance reads the live rows before a
    promotion. A row whose heartbeat stopped is ignored and eventually deleted.
    """

    host = models.CharField(max_length=255)
    pid = models.PositiveIntegerField()
    started_at = models.DateTimeField()
    heartbeat_at = models.DateTimeField(db_index=True)
    generation = models.BigIntegerField(
        default=0, help_text="The routing generation its table was built from."
    )
    loaded = models.JSONField(default=list, blank=True, help_text='[{"model", "version"}] held in memory.')
    failures = models.JSONField(
        default=list, blank=True, help_text='[{"model", "version", "error"}] that failed to load.'
    )

    objects = WorkerStatusQuerySet.as_manager()

    class Meta:
        ordering = ["host", "pid"]
        verbose_name_plural = "worker statuses"
        constraints = [
            models.UniqueConstraint(fields=["host", "pid", "started_at"], name="routing_worker_status_unique")
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def name(self) -> str:
        return f"{self.host} pid {self.pid}"

    def holds(self, model: str, version: int) -> bool:
        return any(e.get("model") == model and e.get("version") == version for e in self.loaded)

    def failure(self, model: str, version: int) -> str:
        """Why this worker could not load the version ('' when it did not fail)."""
        for e in self.failures:
            if e.get("model") == model and e.get("version") == version:
                return str(e.get("error") or "unknown error")
        return ""
