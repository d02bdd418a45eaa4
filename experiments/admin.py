"""Experiments in the admin: the experiment page (verdict, effect over time, SRM, guardrails,
timeline; create, start, stop and "analyse now" through the services), feedback and quality
(read-only), declared outcome metrics, and a panel on routing's endpoint page linking to them.

Every change is one service call; a refusal (``GovernanceError``) shows as a form error, never a 500.
"""

from __future__ import annotations

from typing import Any

from django import forms as django_forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse

from experiments import forms, services
from experiments.charts import effect_chart
from experiments.models import Experiment, ExperimentLook, Feedback, OutcomeMetric, VariantQuality
from experiments.selectors_page import effect_history, timeline
from registry.admin import ReadOnlyAdmin
from routing.governance.errors import GovernanceError


@admin.register(Experiment)
class ExperimentAdmin(ReadOnlyAdmin):
    list_display = ("name", "endpoint", "status", "primary_metric", "latest_verdict", "started_at")
    list_filter = ("status", "endpoint")
    search_fields = ("name", "endpoint__name")
    change_form_template = "experiments/admin/experiment_change_form.html"
    fields = (
        ("endpoint", "status"),
        ("champion", "challengers"),
        ("primary_metric", "direction", "metric_kind"),
        ("alpha", "power", "minimum_effect", "minimum_effect_relative"),
        ("baseline_mean", "baseline_variance"),
        "guardrails",
        ("created_by", "created_at", "started_at", "stopped_at"),
    )
    readonly_fields = tuple(f for row in fields for f in (row if isinstance(row, tuple) else (row,)))

    def has_add_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(services.PERMISSION)

    @admin.display(description="Latest verdict")
    def latest_verdict(self, obj: Experiment) -> str:
        look = obj.looks.order_by("-computed_at", "-id").first()
        return ", ".join(f"{arm}: {o}" for arm, o in look.outcomes.items()) if look else "no look yet"

    def get_urls(self) -> list[Any]:
        custom = [
            path("new/", self.admin_site.admin_view(self.create_view), name="experiments_experiment_create"),
            path(
                "<int:object_id>/do/<slug:action>/",
                self.admin_site.admin_view(self.action_view),
                name="experiments_experiment_action",
            ),
        ]
        return custom + super().get_urls()

    def add_view(self, request: HttpRequest, form_url: str = "", extra_context: Any = None) -> HttpResponse:
        return HttpResponseRedirect(reverse("admin:experiments_experiment_create") + _query(request))

    def create_view(self, request: HttpRequest) -> HttpResponse:
        """Design an experiment; the plan (units, days at current traffic) is computed on create."""
        if not self.has_add_permission(request):
            raise PermissionDenied
        initial = {"endpoint": request.GET.get("endpoint")} if request.GET.get("endpoint") else None
        form = forms.ExperimentCreateForm(request.POST or None, initial=initial)
        back = reverse("admin:experiments_experiment_changelist")
        if request.method == "POST" and form.is_valid():
            try:
                experiment = services.experiment_create(actor=request.user, **form.service_kwargs())
            except GovernanceError as exc:
                form.add_error(None, exc.message)
            else:
                messages.success(
                    request, f"Experiment {experiment.name!r} created (draft): check its plan, then start it."
                )
                return HttpResponseRedirect(
                    reverse("admin:experiments_experiment_change", args=[experiment.pk])
                )
        return self._form_page(request, form, "New experiment", back)

    def action_view(self, request: HttpRequest, object_id: int, action: str) -> HttpResponse:
        experiment = get_object_or_404(Experiment, pk=object_id)
        back = reverse("admin:experiments_experiment_change", args=[experiment.pk])
        calls = {"start": services.experiment_start, "stop": services.experiment_stop}
        if action == "analyze" and request.method == "POST":
            try:
                services.experiment_analyze(actor=request.user, experiment_id=experiment.pk)
                messages.success(request, "Analysed now.")
            except GovernanceError as exc:
                messages.error(request, f"Analysis refused: {exc.message}")
            return HttpResponseRedirect(back)
        if action not in calls:
            messages.error(request, f"Unknown action {action!r}.")
            return HttpResponseRedirect(back)
        form = forms.ReasonForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            try:
                calls[action](actor=request.user, experiment_id=experiment.pk, **form.service_kwargs())
            except GovernanceError as exc:
                form.add_error(None, exc.message)
            else:
                messages.success(request, f"{action.title()}: done on {experiment.name}.")
                return HttpResponseRedirect(back)
        return self._form_page(request, form, f"{action.title()} experiment {experiment.name}", back)

    def _form_page(
        self, request: HttpRequest, form: django_forms.Form, title: str, back: str
    ) -> HttpResponse:
        context = {
            **self.admin_site.each_context(request),
            "title": title,
            "form": form,
            "back": back,
            "opts": self.model._meta,
        }
        return TemplateResponse(request, "experiments/admin/action_form.html", context)

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: Any = None
    ) -> HttpResponse:
        experiment = get_object_or_404(Experiment.objects.select_related("endpoint"), pk=object_id)
        return super().change_view(
            request, object_id, form_url, {**(extra_context or {}), **_page(experiment)}
        )


def _query(request: HttpRequest) -> str:
    endpoint = request.GET.get("endpoint")
    return f"?endpoint={endpoint}" if endpoint else ""


def _page(experiment: Experiment) -> dict[str, Any]:
    """What the experiment page shows besides its fields."""
    look = experiment.looks.order_by("-computed_at", "-id").first()
    history = effect_history(experiment)
    minimum_effect = (experiment.plan or {}).get("minimum_effect") or experiment.minimum_effect
    return {
        "experiment": experiment,
        "look": look,
        "comparisons": look.snapshot["comparisons"] if look else [],
        "arms": look.snapshot["arms"] if look else [],
        "srm": look.snapshot["srm"] if look else None,
        "charts": [
            (arm, effect_chart(points, minimum_effect=minimum_effect)) for arm, points in history.items()
        ],
        "timeline": timeline(experiment),
        "plan": experiment.plan,
        "action_urls": {
            a: reverse("admin:experiments_experiment_action", args=[experiment.pk, a])
            for a in ("start", "stop", "analyze")
        },
    }


@admin.register(ExperimentLook)
class ExperimentLookAdmin(ReadOnlyAdmin):
    list_display = ("experiment", "computed_at", "outcomes", "srm_flagged")
    list_filter = ("experiment",)


@admin.register(Feedback)
class FeedbackAdmin(ReadOnlyAdmin):
    list_display = (
        "received_at", "endpoint", "variant", "model_version", "kind", "request_id", "row", "metric",
        "label", "value", "updates",
    )  # fmt: skip
    list_filter = ("endpoint", "kind", "variant")
    search_fields = ("request_id", "endpoint", "metric")
    date_hierarchy = "received_at"


@admin.register(VariantQuality)
class VariantQualityAdmin(ReadOnlyAdmin):
    list_display = (
        "endpoint", "variant", "model_version", "metric", "value", "count", "label_delay_seconds", "computed_at",
    )  # fmt: skip
    list_filter = ("endpoint", "metric")


@admin.register(OutcomeMetric)
class OutcomeMetricAdmin(admin.ModelAdmin):
    list_display = ("endpoint", "name", "kind", "direction", "created_at")
    list_filter = ("endpoint",)
    fields = ("endpoint", "name", "kind", "direction", "description")

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # a metric's meaning must not change under its data; declare a new one

    def save_model(self, request: HttpRequest, obj: OutcomeMetric, form: Any, change: bool) -> None:
        declared = services.outcome_metric_declare(
            actor=request.user,
            endpoint_name=obj.endpoint.name,
            name=obj.name,
            kind=obj.kind,
            direction=obj.direction,
        )
        obj.pk = declared.pk


def attach_panel_to_endpoint_admin(site: admin.AdminSite = admin.site) -> bool:
    """List the endpoint's experiments (with their verdicts) on routing's endpoint page.

    Our template extends whatever template the page had (monitoring's, which extends routing's),
    named in the context, so the panels above stay.
    """
    from routing.models import Endpoint

    try:
        endpoint_admin = site.get_model_admin(Endpoint)
    except admin.sites.NotRegistered:
        return False
    parent = endpoint_admin.change_form_template or "admin/change_form.html"
    if parent == ENDPOINT_TEMPLATE:
        return True
    original = endpoint_admin.change_view

    def change_view(
        request: HttpRequest, object_id: str, form_url: str = "", extra_context: Any = None
    ) -> HttpResponse:
        extra = {**(extra_context or {}), "experiments_parent_template": parent}
        endpoint = Endpoint.objects.filter(pk=object_id).first() if str(object_id).isdigit() else None
        if endpoint is not None:
            extra["endpoint_experiments"] = list(endpoint.experiments.all()[:10])
            extra["new_experiment_url"] = (
                reverse("admin:experiments_experiment_create") + f"?endpoint={endpoint.name}"
            )
        return original(request, object_id, form_url, extra)

    endpoint_admin.change_form_template = ENDPOINT_TEMPLATE
    endpoint_admin.change_view = change_view
    return True


ENDPOINT_TEMPLATE = "experiments/admin/endpoint_change_form.html"
# Admin modules are imported in INSTALLED_APPS order: routing's and monitoring's are registered.
attach_panel_to_endpoint_admin()
