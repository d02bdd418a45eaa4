"""Drift bookkeeping: the reference each model version is compared with, and the results.

Endpoint and variant are stored by name, like routing's prediction log, so results outlive a
variant that is retired or renamed and this app's migrations do not depend on routing's.
"""

from __future__ import annotations

from django.db import models


class ReferenceKind(models.TextChoices):
    TRAINING = "training", "Training data (logged with the model)"
    LIVE_BOOTSTRAP = "live_bootstrap", "First live predictions (no training reference)"


class DriftReference(models.Model):
    """The distribution summary one model version is compared against (see ``monitoring.drift``).

    Copied from the run's ``drift_reference.json`` the first time drift is computed for the
    version, or bootstrapped from its first live predictions when the run has none.
    """

    model_name = models.CharField(max_length=256)
    model_version = models.PositiveIntegerField()
    kind = models.CharField(max_length=32, choices=ReferenceKind.choices)
    reference = models.JSONField()
    source = models.CharField(max_length=300, help_text="Where it came from: the run, or the log rows.")
    # Live bootstrap only: rows up to here built the reference and are left out of drift windows.
    bootstrap_until = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["model_name", "model_version"], name="monitoring_one_reference_per_version"
            )
        ]

    def __str__(self) -> str:
        return f"{self.model_name} v{self.model_version} ({self.kind})"


class DriftResult(models.Model):
    """One feature's (or the prediction's) drift for one variant over one window of the log."""

    PREDICTION = "__prediction__"

    endpoint = models.CharField(max_length=100)
    variant = models.CharField(max_length=100)
    model_name = models.CharField(max_length=256)
    model_version = models.PositiveIntegerField()
    feature = models.CharField(max_length=256, help_text="A column, or __prediction__ for the output.")
    feature_kind = models.CharField(max_length=16, help_text="numeric or categorical")
    psi = models.FloatField()
    ks_stat = models.FloatField(null=True, blank=True)
    ks_pvalue = models.FloatField(null=True, blank=True)
    chi2_stat = models.FloatField(null=True, blank=True)
    chi2_pvalue = models.FloatField(null=True, blank=True)
    n_live = models.PositiveIntegerField(help_text="Live values compared.")
    n_reference = models.PositiveIntegerField(help_text="Values the reference was built from.")
    reference_kind = models.CharField(max_length=32, choices=ReferenceKind.choices)
    live_shares = models.JSONField(
        null=True,
        blank=True,
        help_text="Live distribution: numeric, share per reference bin; categorical, share per category.",
    )
    window_start = models.DateTimeField()
    window_end = models.DateTimeField()
    computed_at = models.DateTimeField(db_index=True)

    class Meta:
        ordering = ["-computed_at", "endpoint", "variant", "feature"]
        indexes = [models.Index(fields=["endpoint", "variant", "model_version", "-computed_at"])]

    def __str__(self) -> str:
        return f"{self.endpoint}/{self.variant} v{self.model_version} {self.feature}: PSI {self.psi:.3f}"

    @property
    def is_prediction(self) -> bool:
        return self.feature == self.PREDICTION
