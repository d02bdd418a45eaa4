"""Governance's tables: endpoints, their variants (champion, challengers, shadows), promotion requests.

State changes go through ``routing.governance.services`` and ``routing.governance.promotion``; the constraints here
are the last line of defence when two admins race or a service has a bug: one champion per
endpoint, weights only on champion and challengers, a mirror percentage only on shadows.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q


class Endpoint(models.Model):
    """A named entry point (``/predict/<name>``) serving one registered model through its variants."""

    class GateMode(models.TextChoices):
        HIGHER_IS_BETTER = "higher_is_better", "Higher is better"
        LOWER_IS_BETTER = "lower_is_better", "Lower is better"

    name = models.SlugField(max_length=100, unique=True)
    registered_model = models.ForeignKey(
        "registry.RegisteredModel", on_delete=models.PROTECT, related_name="endpoints"
    )
    description = models.TextField(blank=True, default="")
    is_active = models.BooleanField(default=True, help_text="Paused endpoints serve nothing (503).")
    gate_metric = models.CharField(
        max_length=128,
        blank=True,
        default="",
        help_text="Run metric a challenger must match or beat to be promoted (e.g. val_auc); empty: no gate.",
    )
    gate_mode = models.CharField(max_length=32, choices=GateMode.choices, default=GateMode.HIGHER_IS_BETTER)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        permissions = [
            ("start_challenger", "Can start a challenger or shadow"),
            ("set_traffic", "Can set the traffic split"),
            ("request_promotion", "Can request a promotion"),
            ("approve_promotion", "Can approve a promotion requested by someone else"),
            ("promote_endpoint", "Can promote a challenger to champion"),
            ("rollback_endpoint", "Can roll back to the previous champion"),
            ("pause_endpoint", "Can pause and resume an endpoint"),
        ]

    def __str__(self) -> str:
        return self.name


class Variant(models.Model):
    """One model version on an endpoint, with its role and its share of traffic.

    Champion and challengers share traffic by ``weight`` (share = weight / sum of their
    weights); a shadow gets a copy of ``mirror_percent`` % of requests and answers nobody.
    The last replaced champion stays as ``previous_champion`` so a rollback is one step.
    """

    class Role(models.TextChoices):
        CHAMPION = "champion", "Champion"
        CHALLENGER = "challenger", "Challenger"
        SHADOW = "shadow", "Shadow"
        PREVIOUS_CHAMPION = "previous_champion", "Previous champion"
        RETIRED = "retired", "Retired"

    class Backend(models.TextChoices):
        INPROCESS = "inprocess", "In process"
        REMOTE = "remote", "Remote MLflow scoring server"

    SERVING_ROLES = (Role.CHAMPION, Role.CHALLENGER, Role.SHADOW)
    WEIGHTED_ROLES = (Role.CHAMPION, Role.CHALLENGER)

    endpoint = models.ForeignKey(Endpoint, on_delete=models.CASCADE, related_name="variants")
    name = models.SlugField(max_length=100)
    role = models.CharField(max_length=32, choices=Role.choices)
    model_version = models.ForeignKey(
        "registry.ModelVersion", on_delete=models.PROTECT, related_name="variants"
    )
    weight = models.PositiveIntegerField(default=0, help_text="Relative traffic weight.")
    mirror_percent = models.PositiveSmallIntegerField(
        default=0, help_text="Shadows only: % of requests copied to this variant."
    )
    backend = models.CharField(max_length=16, choices=Backend.choices, default=Backend.INPROCESS)
    remote_url = models.URLField(blank=True, default="", help_text="Remote backend only: the scoring server.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["endpoint__name", "role", "name"]
        constraints = [
            models.UniqueConstraint(fields=["endpoint", "name"], name="routing_variant_name_unique"),
            models.UniqueConstraint(
                fields=["endpoint", "model_version"], name="routing_variant_version_unique"
            ),
            models.UniqueConstraint(
                fields=["endpoint"], condition=Q(role="champion"), name="routing_one_champion"
            ),
            models.UniqueConstraint(
                fields=["endpoint"],
                condition=Q(role="previous_champion"),
                name="routing_one_previous_champion",
            ),
            models.CheckConstraint(
                condition=Q(weight__gte=0) & (Q(role__in=["champion", "challenger"]) | Q(weight=0)),
                name="routing_weight_only_on_champion_and_challengers",
            ),
            models.CheckConstraint(
                condition=Q(mirror_percent__gte=0)
                & Q(mirror_percent__lte=100)
                & (Q(role="shadow") | Q(mirror_percent=0)),
                name="routing_mirror_percent_only_on_shadows",
            ),
            models.CheckConstraint(
                condition=Q(backend="inprocess") | ~Q(remote_url=""),
                name="routing_remote_backend_has_url",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.endpoint.name}/{self.name} ({self.role})"

    @property
    def is_serving(self) -> bool:
        return self.role in self.SERVING_ROLES

    def clean(self) -> None:
        """The invariants of one row; the endpoint-wide ones live in the services."""
        errors: dict[str, str] = {}
        if self.role not in self.WEIGHTED_ROLES and self.weight:
            errors["weight"] = f"A {self.role} variant takes no traffic weight."
        if self.role != self.Role.SHADOW and self.mirror_percent:
            errors["mirror_percent"] = "Only a shadow has a mirror percentage."
        if self.mirror_percent > 100:
            errors["mirror_percent"] = "Mirror percentage must be between 0 and 100."
        if self.backend == self.Backend.REMOTE and not self.remote_url:
            errors["remote_url"] = "A remote backend needs the scoring server's URL."
        if errors:
            raise ValidationError(errors)


def traffic_shares(variants: Iterable[tuple[str, str, int]]) -> dict[str, float]:
    """The one traffic-share rule: ``{name: share}`` from ``(name, role, weight)`` triples.

    A champion's or challenger's share is its weight over the sum of their weights (0..1); every
    other role (shadow, previous champion, retired) takes no live traffic and gets 0. With all
    weights at zero every share is 0. The admin, the API and the metrics all read shares here.
    """
    rows = list(variants)
    weighted = Variant.WEIGHTED_ROLES
    total = sum(weight for _, role, weight in rows if role in weighted)
    return {name: (weight / total if total and role in weighted else 0.0) for name, role, weight in rows}


class PromotionRequest(models.Model):
    """Four-eyes change: one user asks, a different user with the approve permission approves.

    A ``promotion`` makes ``variant`` the champion. A ``traffic`` request sets the split in
    ``weights`` (variant name -> weight); it exists because a split that hands non-champions
    more than ``GOVERNANCE_MAX_CHALLENGER_SHARE`` is a promotion in all but name, and ``variant``
    is then the challenger that gains most.
    """

    class Kind(models.TextChoices):
        PROMOTION = "promotion", "Promotion"
        TRAFFIC = "traffic", "Traffic change"

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        APPLIED = "applied", "Approved and applied"
        REJECTED = "rejected", "Rejected"
        SUPERSEDED = "superseded", "Superseded"

    endpoint = models.ForeignKey(Endpoint, on_delete=models.CASCADE, related_name="promotion_requests")
    variant = models.ForeignKey(Variant, on_delete=models.CASCADE, related_name="promotion_requests")
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.PROMOTION)
    weights = models.JSONField(
        default=dict, blank=True, help_text="Traffic requests only: the split to set (name -> weight)."
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    reason = models.TextField()
    gate_override_reason = models.TextField(blank=True, default="")
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    decision_reason = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    decided_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["endpoint"], condition=Q(status="pending"), name="routing_one_pending_promotion"
            )
        ]

    def __str__(self) -> str:
        return f"{self.summary} on {self.endpoint.name} ({self.status})"

    @property
    def summary(self) -> str:
        """What approving it does, in a few words: ``promote v2`` or ``split v1 40, v2 60``."""
        if self.kind == self.Kind.TRAFFIC:
            return "split " + ", ".join(f"{n} {w}" for n, w in sorted(self.weights.items()))
        return f"promote {self.variant.name}"
