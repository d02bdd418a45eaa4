"""Rollout plans: a challenger walked through traffic steps by the controller, and its timeline.

State changes go through ``delivery.services``; the controller (``delivery.controller``) is the
only writer of a running plan's step. ``revision`` is bumped by every change of a plan, so a
controller that evaluated an old revision cannot act on it (one action per tick, however many
controllers run at once).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.db import models
from django.db.models import Q


class RolloutPlan(models.Model):
    """One challenger version on one endpoint, walked through ``steps`` (percent of live traffic).

    At each step the challenger bakes for ``bake_seconds``; the controller then evaluates the
    ``checks``: all pass -> next step (after the last one: promotion, or awaiting approval);
    a failed evaluation holds the step and counts; ``failures_to_rollback`` failed evaluations at one step
    roll the challenger back (retired, aliases back where they were).
    """

    class Status(models.TextChoices):
        RUNNING = "running", "Running"
        PAUSED = "paused", "Paused"
        AWAITING_APPROVAL = "awaiting_approval", "Awaiting approval"
        COMPLETED = "completed", "Completed (promoted)"
        ROLLED_BACK = "rolled_back", "Rolled back"
        ABORTED = "aborted", "Aborted"

    ACTIVE = (Status.RUNNING, Status.PAUSED, Status.AWAITING_APPROVAL)

    endpoint = models.ForeignKey("routing.Endpoint", on_delete=models.PROTECT, related_name="rollout_plans")
    variant = models.ForeignKey("routing.Variant", on_delete=models.PROTECT, related_name="rollout_plans")
    steps = models.JSONField(
        help_text="Challenger share per step, percent, increasing (e.g. [1, 5, 25, 50])."
    )
    bake_seconds = models.PositiveIntegerField(help_text="Time at each step before its checks can pass.")
    checks = models.JSONField(default=dict, blank=True, help_text="Check name -> its settings.")
    failures_to_rollback = models.PositiveIntegerField(default=1)
    approval_required = models.BooleanField(default=False)
    max_hold_seconds = models.PositiveIntegerField(
        default=3600, help_text="After the bake time, how long a step may be held before it is overdue."
    )
    status = models.CharField(max_length=32, choices=Status.choices, default=Status.RUNNING, db_index=True)
    step_index = models.PositiveSmallIntegerField(default=0)
    step_started_at = models.DateTimeField()
    step_failures = models.PositiveIntegerField(
        default=0, help_text="Failed evaluations at the current step."
    )
    last_evaluated_at = models.DateTimeField(null=True, blank=True)
    revision = models.PositiveIntegerField(default=0)
    promotion_request = models.ForeignKey(
        "routing.PromotionRequest", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    started_by = models.CharField(max_length=150, help_text="Username, or the system actor.")
    reason = models.TextField()
    outcome = models.TextField(blank=True, default="", help_text="Why the plan ended (or is held).")
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["endpoint"],
                condition=Q(status__in=["running", "paused", "awaiting_approval"]),
                name="delivery_one_active_plan_per_endpoint",
            )
        ]

    def __str__(self) -> str:
        return f"plan {self.pk} {self.endpoint_id and self.endpoint.name}/{self.variant.name}"

    @property
    def is_active(self) -> bool:
        return self.status in self.ACTIVE

    @property
    def percent(self) -> int:
        """The challenger's share at the current step (0 once the plan has ended without promotion)."""
        if self.status in (self.Status.ROLLED_BACK, self.Status.ABORTED):
            return 0
        if self.status == self.Status.COMPLETED:
            return 100
        return int(self.steps[self.step_index])

    @property
    def is_last_step(self) -> bool:
        return self.step_index >= len(self.steps) - 1

    def deadline(self) -> datetime:
        """When a held step (or an unanswered approval) becomes overdue."""
        return self.step_started_at + timedelta(seconds=self.bake_seconds + self.max_hold_seconds)


class RolloutEvent(models.Model):
    """One line of a plan's timeline: a check evaluation or a change of step or status.

    ``checks`` holds the evaluation's results (``[{"check", "result", "value", "threshold",
    "detail"}]``); ``percent`` is the challenger's share after the event, so the timeline reads
    as share over time.
    """

    class Kind(models.TextChoices):
        STARTED = "started", "Started"
        EVALUATED = "evaluated", "Checks evaluated (held)"
        ADVANCED = "advanced", "Advanced to the next step"
        AWAITING_APPROVAL = "awaiting_approval", "Awaiting approval"
        PROMOTED = "promoted", "Promoted"
        ROLLED_BACK = "rolled_back", "Rolled back"
        PAUSED = "paused", "Paused"
        RESUMED = "resumed", "Resumed"
        ABORTED = "aborted", "Aborted"
        ERROR = "error", "Action refused"

    plan = models.ForeignKey(RolloutPlan, on_delete=models.CASCADE, related_name="events")
    at = models.DateTimeField(db_index=True)
    kind = models.CharField(max_length=32, choices=Kind.choices)
    step_index = models.PositiveSmallIntegerField()
    percent = models.PositiveSmallIntegerField()
    checks = models.JSONField(default=list, blank=True)
    actor = models.CharField(max_length=150)
    note = models.TextField(blank=True, default="")

    class Meta:
        ordering = ["at", "pk"]

    def __str__(self) -> str:
        return f"{self.plan_id} {self.kind} step {self.step_index} ({self.percent} %)"


class BanditPolicy(models.Model):
    """An endpoint in bandit mode: the controller turns each arm's outcome posterior into weights.

    Arms are the endpoint's champion and challengers; their outcomes are the per-unit values of
    the declared outcome metric ``metric`` since ``started_at`` (``experiments.selectors``). Each
    tick computes Thompson-sampling weights with ``experiments.bandit`` (``floor`` percent per
    arm at least, no arm moving more than ``max_step`` points per tick, nothing until every arm
    has ``min_outcomes``) and writes them through ``traffic_split_set`` as the actor ``bandit``.
    The last evaluation is kept here for the admin and the metrics.
    """

    endpoint = models.ForeignKey("routing.Endpoint", on_delete=models.CASCADE, related_name="bandit_policies")
    metric = models.SlugField(max_length=100, help_text="A declared outcome metric of the endpoint.")
    metric_kind = models.CharField(max_length=16)
    direction = models.CharField(max_length=32)
    floor = models.PositiveSmallIntegerField(default=5)
    max_step = models.PositiveSmallIntegerField(default=10)
    min_outcomes = models.PositiveIntegerField(default=30)
    is_active = models.BooleanField(default=True, db_index=True)
    started_by = models.CharField(max_length=150)
    started_at = models.DateTimeField()
    stopped_at = models.DateTimeField(null=True, blank=True)
    revision = models.PositiveIntegerField(default=0)
    last_evaluated_at = models.DateTimeField(null=True, blank=True)
    last_evaluation = models.JSONField(
        default=dict, blank=True, help_text="probability_best, target, weights, outcomes and means per arm."
    )
    regret = models.FloatField(
        default=0.0, help_text="Outcome lost against the best arm, from observed means."
    )
    changes = models.PositiveIntegerField(default=0, help_text="Weight changes applied.")

    class Meta:
        ordering = ["-started_at"]
        verbose_name_plural = "bandit policies"
        constraints = [
            models.UniqueConstraint(
                fields=["endpoint"],
                condition=Q(is_active=True),
                name="delivery_one_active_bandit_per_endpoint",
            )
        ]

    def __str__(self) -> str:
        return f"bandit on {self.endpoint.name} ({self.metric})"
