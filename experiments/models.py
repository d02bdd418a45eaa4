"""Experiments' tables: declared outcome metrics, feedback, per-variant quality, experiments, looks.

Feedback and quality rows name endpoint and variant as text, like routing's prediction log, so
they outlive a variant that is retired or renamed. Declared outcome metrics and experiments point
at the endpoint row: they are configuration of a live endpoint. Experiment changes go through
``experiments.services`` (permission-checked, locked, audited).
"""

from __future__ import annotations

from django.db import models
from django.db.models import Q

from experiments.quality_metrics import GROUND_TRUTH_METRICS


class MetricKind(models.TextChoices):
    BINARY = "binary", "0/1 (a rate)"
    CONTINUOUS = "continuous", "a number (a mean)"


class Direction(models.TextChoices):
    HIGHER_IS_BETTER = "higher_is_better", "Higher is better"
    LOWER_IS_BETTER = "lower_is_better", "Lower is better"


class OutcomeMetric(models.Model):
    """An outcome an endpoint accepts feedback for (``conversion``, ``revenue``...): declared first,
    so a typo in a client's metric name is a per-item 400, not a new series."""

    endpoint = models.ForeignKey("routing.Endpoint", on_delete=models.CASCADE, related_name="outcome_metrics")
    name = models.SlugField(max_length=100)
    kind = models.CharField(max_length=16, choices=MetricKind.choices, default=MetricKind.CONTINUOUS)
    direction = models.CharField(max_length=32, choices=Direction.choices, default=Direction.HIGHER_IS_BETTER)
    description = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["endpoint__name", "name"]
        constraints = [
            models.UniqueConstraint(fields=["endpoint", "name"], name="experiments_outcome_metric_unique")
        ]

    def __str__(self) -> str:
        return f"{self.endpoint.name}:{self.name} ({self.kind})"


class Feedback(models.Model):
    """One piece of feedback: ground truth for one row of a prediction, or an outcome of a unit.

    Ground truth is unique per (endpoint, request id, row): sending it again replaces the label
    and counts ``updates``. Outcomes are events: each is its own row, attributed to the variant
    (and version) that served the unit last within ``FEEDBACK_ATTRIBUTION_WINDOW_SECONDS``.
    ``prediction`` is the served answer for that row, copied so quality needs no join on the log.
    Written in batches off the request path (``experiments.feedback_writer``).
    """

    class Kind(models.TextChoices):
        GROUND_TRUTH = "ground_truth", "Ground truth for a prediction"
        OUTCOME = "outcome", "Outcome of a unit"

    endpoint = models.CharField(max_length=100)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    request_id = models.CharField(max_length=128, blank=True, default="")
    row = models.PositiveIntegerField(default=0)
    unit_key_hash = models.CharField(max_length=64, blank=True, default="")
    metric = models.CharField(max_length=100, blank=True, default="", help_text="Outcomes only.")
    label = models.JSONField(null=True, blank=True, help_text="Ground truth of a classifier.")
    value = models.FloatField(null=True, blank=True, help_text="True value (regression) or outcome value.")
    prediction = models.JSONField(null=True, blank=True, help_text="What was answered for this row.")
    variant = models.CharField(max_length=100)
    model_version = models.PositiveIntegerField()
    predicted_at = models.DateTimeField()
    received_at = models.DateTimeField()
    updates = models.PositiveIntegerField(default=0, help_text="Times this ground truth was sent again.")

    class Meta:
        ordering = ["-received_at"]
        verbose_name_plural = "feedback"
        constraints = [
            models.UniqueConstraint(
                fields=["endpoint", "request_id", "row"],
                condition=Q(kind="ground_truth"),
                name="experiments_one_ground_truth_per_row",
            )
        ]
        indexes = [models.Index(fields=["endpoint", "variant", "model_version", "received_at"])]

    def __str__(self) -> str:
        what = f"{self.request_id}[{self.row}]" if self.kind == self.Kind.GROUND_TRUTH else self.metric
        return f"{self.endpoint}/{self.variant} v{self.model_version} {what}"


class VariantQuality(models.Model):
    """The latest quality of one endpoint/variant/version on one metric, from its feedback.

    Rewritten by ``quality_compute`` (Celery beat and ``manage.py compute_quality``); exported as
    ``controlplane_variant_quality``. ``metric`` is one of ``GROUND_TRUTH_METRICS`` or
    ``outcome:<name>``.
    """

    endpoint = models.CharField(max_length=100)
    variant = models.CharField(max_length=100)
    model_version = models.PositiveIntegerField()
    metric = models.CharField(max_length=110)
    value = models.FloatField(null=True, blank=True)
    count = models.PositiveIntegerField(help_text="Feedback items the value is computed from.")
    label_delay_seconds = models.FloatField(
        null=True, blank=True, help_text="Median time from the prediction to its feedback."
    )
    computed_at = models.DateTimeField()

    class Meta:
        ordering = ["endpoint", "variant", "metric"]
        verbose_name_plural = "variant quality"
        constraints = [
            models.UniqueConstraint(
                fields=["endpoint", "variant", "model_version", "metric"], name="experiments_quality_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.endpoint}/{self.variant} v{self.model_version} {self.metric}={self.value}"


class Experiment(models.Model):
    """A comparison of an endpoint's champion with one or more challengers on a primary metric.

    ``primary_metric``: ``accuracy`` (higher is better), ``absolute_error`` or ``squared_error``
    (lower), or ``outcome:<name>`` for a declared outcome. ``guardrails``: a list of
    ``{"metric", "tolerance", "relative"[, "max"]}`` on ``fallback_rate``, ``latency_p99_ms``,
    ``prediction_psi``, ``feature_psi_max`` (the latest drift from monitoring) or
    ``outcome:<name>`` (challenger not worse than champion by more than the tolerance, and not
    beyond ``max`` when given). ``plan`` is the sample-size plan made at creation (``SampleSizePlan`` as JSON).
    """

    class Status(models.TextChoices):
        DRAFT = "draft", "Draft"
        RUNNING = "running", "Running"
        STOPPED = "stopped", "Stopped"

    endpoint = models.ForeignKey("routing.Endpoint", on_delete=models.CASCADE, related_name="experiments")
    name = models.CharField(max_length=100)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.DRAFT)
    champion = models.CharField(max_length=100, help_text="The champion variant's name.")
    challengers = models.JSONField(help_text="Challenger variant names.")
    primary_metric = models.CharField(max_length=110)
    metric_kind = models.CharField(max_length=16, choices=MetricKind.choices)
    direction = models.CharField(max_length=32, choices=Direction.choices)
    guardrails = models.JSONField(default=list, blank=True)
    alpha = models.FloatField(default=0.05)
    power = models.FloatField(default=0.8)
    minimum_effect = models.FloatField(help_text="Smallest difference worth detecting, in metric units.")
    minimum_effect_relative = models.BooleanField(default=False)
    baseline_mean = models.FloatField()
    baseline_variance = models.FloatField(null=True, blank=True)
    plan = models.JSONField(default=dict, blank=True)
    created_by = models.CharField(max_length=150)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    stopped_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        permissions = [("run_experiment", "Can create, start and stop an experiment")]
        constraints = [
            models.UniqueConstraint(
                fields=["endpoint"],
                condition=Q(status="running"),
                name="experiments_one_running_per_endpoint",
            ),
            models.CheckConstraint(
                condition=Q(primary_metric__in=GROUND_TRUTH_METRICS)
                | Q(primary_metric__startswith="outcome:"),
                name="experiments_known_primary_metric",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} on {self.endpoint.name} ({self.status})"

    @property
    def arms(self) -> list[str]:
        return [self.champion, *self.challengers]


class ExperimentLook(models.Model):
    """One analysis of a running experiment: ``analyze_experiment``'s result as JSON, plus the
    few numbers the list and the chart read without opening it."""

    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="looks")
    computed_at = models.DateTimeField(db_index=True)
    snapshot = models.JSONField()
    srm_flagged = models.BooleanField(default=False)
    outcomes = models.JSONField(default=dict, help_text="challenger -> verdict outcome.")

    class Meta:
        ordering = ["-computed_at", "-id"]
        get_latest_by = "computed_at"

    def __str__(self) -> str:
        return f"{self.experiment.name} at {self.computed_at:%Y-%m-%d %H:%M:%S}"
