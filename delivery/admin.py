"""Admin for rollout plans: the plan page (timeline, checks per step, share over time, outcome),
its buttons (pause, resume, abort, approve) and "Start rollout plan".

Every button opens a confirmation page; posting it calls one service in ``delivery.services``. A
refusal shows as a form error and an admin message, never a 500.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django import forms as django_forms
from django.contrib import admin, messages
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join

from delivery import forms, services
from delivery.models import BanditPolicy, RolloutPlan
from delivery.permissions import ACTION_PERMISSIONS
from registry.admin import ReadOnlyAdmin

Status = RolloutPlan.Status

# slug -> (button label, form class, service, the statuses it applies to)
ACTIONS: dict[str, tuple[str, type[forms.PlanReasonForm], Callable[..., Any], tuple[str, ...]]] = {
    "pause": ("Pause", forms.PlanReasonForm, services.rollout_pause, (Status.RUNNING,)),
    "resume": ("Resume", forms.PlanReasonForm, services.rollout_resume, (Status.PAUSED,)),
    "abort": ("Abort", forms.PlanReasonForm, services.rollout_abort, RolloutPlan.ACTIVE),
    "approve": (
        "Approve promotion",
        forms.PlanApproveForm,
        services.rollout_approve,
        (Status.AWAITING_APPROVAL,),
    ),
}


def _allowed(request: HttpRequest, action: str) -> bool:
    return request.user.has_perm(ACTION_PERMISSIONS[f"rollout_{action}"])


def share_chart(plan: RolloutPlan, width: int = 600, height: int = 120) -> str:
    """The challenger's share over time as an inline SVG step line (one point per timeline event)."""
    points = [(e.at, e.percent) for e in plan.events.all()]
    if not points:
        return "—"
    start, end = points[0][0], max(points[-1][0], plan.finished_at or points[-1][0])
    span = max((end - start).total_seconds(), 1.0)
    xy, last = [], None
    for at, percent in points:
        x = 10 + (width - 20) * (at - start).total_seconds() / span
        y = height - 10 - (height - 20) * percent / 100
        if last is not None:
            xy.append(f"{x:.1f},{last:.1f}")  # a step: hold the previous share until this event
        xy.append(f"{x:.1f},{y:.1f}")
        last = y
    return format_html(
        '<svg id="share-chart" width="{}" height="{}" role="img" aria-label="challenger share over time">'
        '<rect width="100%" height="100%" fill="#f8f8f8"/><polyline fill="none" stroke="#264b5d" '
        'stroke-width="2" points="{}"/><text x="12" y="14" font-size="11">100 %</text>'
        '<text x="12" y="{}" font-size="11">0 %</text></svg>',
        width,
        height,
        " ".join(xy),
        height - 12,
    )


@admin.register(RolloutPlan)
class RolloutPlanAdmin(ReadOnlyAdmin):
    """Read-only rows; a plan starts with "Start rollout plan" and changes only through its buttons."""

    list_display = ("id", "endpoint", "variant", "status", "step_summary", "started_by", "created_at")
    list_filter = ("status", "endpoint")
    list_select_related = ("endpoint", "variant")
    change_form_template = "admin/delivery/rolloutplan/change_form.html"
    change_list_template = "admin/delivery/rolloutplan/change_list.html"
    fieldsets = (
        (
            None,
            {"fields": ("endpoint", "variant", "status", "step_summary", "outcome", "reason", "started_by")},
        ),
        (
            "Plan",
            {
                "fields": (
                    "bake_seconds",
                    "checks",
                    "failures_to_rollback",
                    "approval_required",
                    "max_hold_seconds",
                )
            },
        ),
        ("Share over time", {"fields": ("share_over_time",)}),
        ("Timeline (steps and check results)", {"fields": ("timeline",)}),
    )

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return [f for _, opts in self.fieldsets for f in opts["fields"]]

    @admin.display(description="Steps")
    def step_summary(self, obj: RolloutPlan) -> str:
        parts = [
            format_html("<b>[{} %]</b>", s)
            if i == obj.step_index and obj.is_active
            else format_html("{} %", s)
            for i, s in enumerate(obj.steps)
        ]
        return format_html_join(" → ", "{}", ((p,) for p in parts))

    @admin.display(description="Challenger share")
    def share_over_time(self, obj: RolloutPlan) -> str:
        return share_chart(obj)

    @admin.display(description="Events (oldest first)")
    def timeline(self, obj: RolloutPlan) -> str:
        rows = [
            (
                e.at.strftime("%Y-%m-%d %H:%M:%S"),
                e.get_kind_display(),
                f"{e.step_index + 1}/{len(obj.steps)}",
                f"{e.percent} %",
                format_html_join(
                    "",
                    '<div class="check-{}">{}: <b>{}</b> — {}</div>',
                    ((c["result"], c["check"], c["result"], c["detail"]) for c in e.checks),
                )
                or "—",
                e.actor,
                e.note,
            )
            for e in obj.events.all()
        ]
        head = "".join(f"<th>{h}</th>" for h in ("When", "What", "Step", "Share", "Checks", "Who", "Note"))
        return format_html(
            '<table id="timeline"><tr>{}</tr>{}</table>',
            format_html(head),
            format_html_join("", "<tr>" + "<td>{}</td>" * 7 + "</tr>", rows),
        )

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict | None = None
    ) -> HttpResponse:
        plan = RolloutPlan.objects.filter(pk=object_id).first() if object_id.isdigit() else None
        if plan is not None:
            extra_context = {
                **(extra_context or {}),
                "plan_actions": [
                    (a, ACTIONS[a][0], reverse("admin:delivery_rolloutplan_action", args=[plan.pk, a]))
                    for a in ACTIONS
                    if plan.status in ACTIONS[a][3] and _allowed(request, a)
                ],
            }
        return super().change_view(request, object_id, form_url, extra_context)

    def changelist_view(self, request: HttpRequest, extra_context: dict | None = None) -> HttpResponse:
        can_start = request.user.has_perm(ACTION_PERMISSIONS["rollout_start"])
        extra_context = {**(extra_context or {}), "can_start": can_start}
        return super().changelist_view(request, extra_context)

    def get_urls(self) -> list[Any]:
        custom = [
            path(
                "<int:object_id>/action/<slug:action>/",
                self.admin_site.admin_view(self.action_view),
                name="delivery_rolloutplan_action",
            ),
            path("start/", self.admin_site.admin_view(self.start_view), name="delivery_rolloutplan_start"),
        ]
        return custom + super().get_urls()

    def action_view(self, request: HttpRequest, object_id: int, action: str) -> HttpResponse:
        plan = get_object_or_404(RolloutPlan, pk=object_id)
        back = reverse("admin:delivery_rolloutplan_change", args=[plan.pk])
        if action not in ACTIONS:
            messages.error(request, f"Unknown action {action!r}.")
            return HttpResponseRedirect(back)
        label, form_class, service, _ = ACTIONS[action]
        form = form_class(request.POST or None)
        if request.method == "POST" and form.is_valid():
            if self._called(request, form, label, service, plan_id=plan.pk):
                return HttpResponseRedirect(back)
        return self._form_page(request, form, f"{label} rollout plan {plan.pk}", back)

    def start_view(self, request: HttpRequest) -> HttpResponse:
        back = reverse("admin:delivery_rolloutplan_changelist")
        form = forms.RolloutStartForm(request.POST or None, initial={"endpoint": request.GET.get("endpoint")})
        if request.method == "POST" and form.is_valid():
            plan = self._called(request, form, "Start rollout plan", services.rollout_start)
            if plan is not None:
                return HttpResponseRedirect(reverse("admin:delivery_rolloutplan_change", args=[plan.pk]))
        return self._form_page(request, form, "Start rollout plan", back)

    def _called(
        self,
        request: HttpRequest,
        form: forms.PlanReasonForm,
        label: str,
        service: Callable[..., Any],
        **target: Any,
    ) -> Any:
        from routing.governance.errors import GovernanceError

        try:
            plan = service(actor=request.user, **target, **form.service_kwargs())
        except GovernanceError as exc:
            form.add_error(None, exc.message)
            messages.error(request, f"{label} refused: {exc.message}")
            return None
        messages.success(request, f"{label}: done (plan {plan.pk}, {plan.get_status_display().lower()}).")
        return plan

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
        return TemplateResponse(request, "admin/delivery/rolloutplan/action_form.html", context)


@admin.register(BanditPolicy)
class BanditPolicyAdmin(ReadOnlyAdmin):
    """Bandit mode per endpoint and its last evaluation; read-only (start and stop: /api/v1/bandits/)."""

    list_display = (
        "endpoint",
        "metric",
        "is_active",
        "floor",
        "max_step",
        "changes",
        "regret",
        "last_evaluated_at",
    )
    list_filter = ("is_active", "endpoint")
    list_select_related = ("endpoint",)
    readonly_fields = (
        "endpoint", "metric", "metric_kind", "direction", "floor", "max_step", "min_outcomes", "is_active",
        "started_by", "started_at", "stopped_at", "last_evaluated_at", "last_evaluation", "regret", "changes",
    )  # fmt: skip
    fields = readonly_fields


ENDPOINT_TEMPLATE = "admin/delivery/endpoint_change_form.html"


def attach_panel_to_endpoint_admin(site: admin.AdminSite = admin.site) -> bool:
    """List the endpoint's rollout plans (and bandit mode) on routing's endpoint page.

    Like experiments' panel: our template extends whatever template the page had (named in the
    context), and the page's own ``change_view`` still runs, so the panels above stay.
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
        extra = {**(extra_context or {}), "delivery_parent_template": parent}
        endpoint = Endpoint.objects.filter(pk=object_id).first() if str(object_id).isdigit() else None
        if endpoint is not None:
            extra["endpoint_rollouts"] = list(endpoint.rollout_plans.select_related("variant")[:10])
            extra["endpoint_bandit"] = endpoint.bandit_policies.filter(is_active=True).first()
            if request.user.has_perm(ACTION_PERMISSIONS["rollout_start"]):
                extra["new_rollout_url"] = (
                    reverse("admin:delivery_rolloutplan_start") + f"?endpoint={endpoint.name}"
                )
        return original(request, object_id, form_url, extra)

    endpoint_admin.change_form_template = ENDPOINT_TEMPLATE
    endpoint_admin.change_view = change_view
    return True


# Admin modules are imported in INSTALLED_APPS order: routing's, monitoring's and experiments' are registered.
attach_panel_to_endpoint_admin()
