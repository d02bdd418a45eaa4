"""Admin for governance: the endpoint page, its action buttons, and "start as challenger".

Every button opens a confirmation page with a reason field; posting it calls one service. A
refusal (``GovernanceError``) shows as a form error and an admin message, never a 500. Who may
press which button is decided by ``routing.governance.permissions``, the same table the API uses.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django import forms as django_forms
from django.conf import settings
from django.contrib import admin, messages
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join

from registry.admin import ModelVersionAdmin, ReadOnlyAdmin
from registry.models import ModelVersion
from routing.governance import forms, promotion, services, traffic_changes
from routing.governance.errors import GovernanceError
from routing.governance.permissions import actor_can
from routing.governance.selectors import (
    alias_pushes_open,
    endpoint_history,
    endpoint_variants,
    promotion_requests_pending,
    variant_shares,
)
from routing.models import AliasPush, Endpoint, PromotionRequest, Variant

# action slug -> (button label, form class, service, permission action, form extra kwargs)
ACTIONS: dict[str, tuple[str, type[forms.ReasonForm], Callable[..., Any], str, dict[str, Any]]] = {
    "challenger": ("Start challenger", forms.ChallengerStartForm, services.challenger_start, "challenger_start", {}),
    "split": ("Set split", forms.TrafficSplitForm, services.traffic_split_set, "traffic_split_set", {}),
    "shadow": ("Add shadow", forms.ShadowSetForm, services.shadow_set, "shadow_set", {}),
    "unshadow": ("Remove shadow", forms.VariantReasonForm, services.shadow_remove, "shadow_remove", {}),
    "promote": ("Promote", forms.PromoteForm, promotion.endpoint_promote, "endpoint_promote", {}),
    "request": (
        "Request promotion", forms.PromoteForm, promotion.promotion_request, "promotion_request", {}
    ),
    "request_split": (
        "Request traffic change",
        forms.TrafficSplitForm,
        traffic_changes.traffic_change_request,
        "traffic_change_request",
        {},
    ),
    "approve": (
        "Approve promotion",
        forms.DecisionForm,
        promotion.promotion_approve,
        "promotion_approve",
        {"reason_required": False},
    ),
    "reject": ("Reject promotion", forms.DecisionForm, promotion.promotion_reject, "promotion_reject", {}),
    "rollback": ("Roll back", forms.ReasonForm, promotion.endpoint_rollback, "endpoint_rollback", {}),
    "pause": ("Pause", forms.ReasonForm, services.endpoint_pause, "endpoint_pause", {}),
    "resume": ("Resume", forms.ReasonForm, services.endpoint_resume, "endpoint_resume", {}),
}  # fmt: skip
_BY_REQUEST_ID = {"approve", "reject"}  # services addressed by request id, not endpoint name


def _visible_actions(request: HttpRequest, endpoint: Endpoint) -> list[str]:
    """The buttons this user may press on this endpoint in its current state."""
    roles = set(endpoint.variants.values_list("role", flat=True))
    pending = endpoint.promotion_requests.filter(status=PromotionRequest.Status.PENDING).exists()
    four_eyes = settings.REQUIRE_PROMOTION_APPROVAL
    applicable = {
        "challenger": True,
        "split": True,
        "shadow": True,
        "unshadow": Variant.Role.SHADOW in roles,
        "promote": Variant.Role.CHALLENGER in roles and not four_eyes,
        "request": Variant.Role.CHALLENGER in roles and four_eyes and not pending,
        "request_split": Variant.Role.CHALLENGER in roles and four_eyes and not pending,
        "approve": pending,
        "reject": pending,
        "rollback": Variant.Role.PREVIOUS_CHAMPION in roles,
        "pause": endpoint.is_active,
        "resume": not endpoint.is_active,
    }
    return [a for a, ok in applicable.items() if ok and actor_can(request.user, ACTIONS[a][3])]


@admin.register(Endpoint)
class EndpointAdmin(admin.ModelAdmin):
    """Read-only rows; every change goes through an action button and its service."""

    list_display = ("name", "registered_model", "is_active", "split_summary", "gate_metric", "updated_at")
    list_filter = ("is_active",)
    search_fields = ("name", "registered_model__name", "description")
    change_form_template = "admin/routing/endpoint/change_form.html"
    fieldsets = (
        (None, {"fields": ("name", "registered_model", "description", "is_active")}),
        ("Traffic", {"fields": ("variants_table", "pending_requests", "mlflow_pushes")}),
        ("Promotion gate", {"fields": ("gate_metric", "gate_mode")}),
        ("History", {"fields": ("history_table",)}),
    )

    def has_add_permission(self, request: HttpRequest) -> bool:
        return actor_can(request.user, "endpoint_create")

    def add_view(self, request: HttpRequest, form_url: str = "", extra_context: Any = None) -> HttpResponse:
        """Create through ``endpoint_create`` (audited, aliases set in MLflow), never a bare save."""
        back = reverse("admin:routing_endpoint_changelist")
        if not self.has_add_permission(request):
            messages.error(request, "You may not create endpoints.")
            return HttpResponseRedirect(back)
        form = forms.EndpointCreateForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            try:
                endpoint = services.endpoint_create(actor=request.user, **form.service_kwargs())
            except GovernanceError as exc:
                form.add_error(None, exc.message)
                messages.error(request, f"Create endpoint refused: {exc.message}")
            else:
                messages.success(request, f"Endpoint {endpoint.name} created.")
                return HttpResponseRedirect(reverse("admin:routing_endpoint_change", args=[endpoint.pk]))
        return self._form_page(request, form, "Create endpoint", back, None)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return [f for _, opts in self.fieldsets for f in opts["fields"]]

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict | None = None
    ) -> HttpResponse:
        endpoint = Endpoint.objects.filter(pk=object_id).first() if object_id.isdigit() else None
        if endpoint is not None:
            extra_context = {
                **(extra_context or {}),
                "governance_actions": [
                    (a, ACTIONS[a][0], reverse("admin:routing_endpoint_action", args=[endpoint.pk, a]))
                    for a in _visible_actions(request, endpoint)
                ],
                "mlflow_model_url": endpoint.registered_model.mlflow_url,
            }
        return super().change_view(request, object_id, form_url, extra_context)

    @admin.display(description="Split")
    def split_summary(self, obj: Endpoint) -> str:
        variants = endpoint_variants(endpoint=obj, include_inactive=False)
        shares = variant_shares(variants=variants)
        weighted = (v for v in variants if v.role in Variant.WEIGHTED_ROLES)
        return ", ".join(f"{v.name} {v.role} {shares[v.name]:.0%}" for v in weighted)

    @admin.display(description="Variants")
    def variants_table(self, obj: Endpoint) -> str:
        variants = endpoint_variants(endpoint=obj)
        shares = variant_shares(variants=variants)
        rows = (
            (
                v.name,
                v.role,
                format_html(
                    '<a href="{}" target="_blank" rel="noopener">{}</a>',
                    v.model_version.mlflow_url,
                    v.model_version,
                ),
                v.weight if v.role in Variant.WEIGHTED_ROLES else "—",
                f"{shares[v.name]:.1%}" if v.role in Variant.WEIGHTED_ROLES else "—",
                f"{v.mirror_percent} %" if v.role == Variant.Role.SHADOW else "—",
                v.get_backend_display(),
                "servable" if v.model_version.is_servable else v.model_version.status,
            )
            for v in variants
        )
        body = format_html_join("", "<tr>" + "<td>{}</td>" * 8 + "</tr>", rows)
        head = "".join(
            f"<th>{h}</th>"
            for h in ("Variant", "Role", "Version", "Weight", "Share", "Mirror", "Backend", "Status")
        )
        return format_html('<table id="variants"><tr>{}</tr>{}</table>', format_html(head), body)

    @admin.display(description="Pending requests (promotion or traffic change)")
    def pending_requests(self, obj: Endpoint) -> str:
        rows = [
            (r.pk, r.summary, r.requested_by, r.reason, r.created_at.strftime("%Y-%m-%d %H:%M"))
            for r in promotion_requests_pending(endpoint=obj)
        ]
        if not rows:
            return "—"
        return format_html(
            '<table id="pending"><tr><th>#</th><th>Change</th><th>Asked by</th><th>Reason</th>'
            "<th>At</th></tr>{}</table>",
            format_html_join("", "<tr>" + "<td>{}</td>" * 5 + "</tr>", rows),
        )

    @admin.display(description="MLflow alias pushes not applied yet")
    def mlflow_pushes(self, obj: Endpoint) -> str:
        rows = [
            (
                p.pk,
                p.get_status_display(),
                ", ".join(f"{a}={v if v is not None else 'none'}" for a, v in p.aliases.items()),
                p.action,
                p.attempts,
                p.last_error or "not tried yet",
                p.created_at.strftime("%Y-%m-%d %H:%M:%S"),
            )
            for p in alias_pushes_open(endpoint=obj)
        ]
        if not rows:
            return "— (MLflow has every change)"
        return format_html(
            '<table id="alias-pushes"><tr><th>#</th><th>Status</th><th>Aliases</th><th>Change</th>'
            "<th>Attempts</th><th>Last error</th><th>Since</th></tr>{}</table>",
            format_html_join("", "<tr>" + "<td>{}</td>" * 7 + "</tr>", rows),
        )

    @admin.display(description="Changes (newest first)")
    def history_table(self, obj: Endpoint) -> str:
        rows = [
            (e.created_at.strftime("%Y-%m-%d %H:%M:%S"), e.actor, e.action.removeprefix("routing."), e.reason)
            for e in endpoint_history(endpoint=obj)
        ]
        return format_html(
            '<table id="history"><tr><th>When</th><th>Who</th><th>What</th><th>Why</th></tr>{}</table>',
            format_html_join("", "<tr>" + "<td>{}</td>" * 4 + "</tr>", rows),
        )

    def get_urls(self) -> list[Any]:
        custom = [
            path(
                "<int:object_id>/action/<slug:action>/",
                self.admin_site.admin_view(self.action_view),
                name="routing_endpoint_action",
            ),
            path(
                "start-version/<int:version_id>/",
                self.admin_site.admin_view(self.start_version_view),
                name="routing_start_version",
            ),
        ]
        return custom + super().get_urls()

    def action_view(self, request: HttpRequest, object_id: int, action: str) -> HttpResponse:
        """Confirmation page with a reason field; on POST, one service call."""
        endpoint = get_object_or_404(Endpoint, pk=object_id)
        back = reverse("admin:routing_endpoint_change", args=[endpoint.pk])
        if action not in ACTIONS:
            messages.error(request, f"Unknown action {action!r}.")
            return HttpResponseRedirect(back)
        label, form_class, service, _, extra = ACTIONS[action]
        form = form_class(request.POST or None, endpoint=endpoint, **extra)
        if request.method == "POST" and form.is_valid():
            target = {} if action in _BY_REQUEST_ID else {"endpoint_name": endpoint.name}
            try:
                service(actor=request.user, **target, **form.service_kwargs())
            except GovernanceError as exc:
                form.add_error(None, exc.message)
                messages.error(request, f"{label} refused: {exc.message}")
            else:
                messages.success(request, f"{label}: done on {endpoint.name}.")
                return HttpResponseRedirect(back)
        return self._form_page(request, form, f"{label} on {endpoint.name}", back, endpoint)

    def start_version_view(self, request: HttpRequest, version_id: int) -> HttpResponse:
        """From a model version: start it as a challenger on one of its model's endpoints."""
        version = get_object_or_404(ModelVersion.objects.select_related("registered_model"), pk=version_id)
        back = reverse("admin:registry_modelversion_change", args=[version.pk])
        form = forms.StartOnEndpointForm(request.POST or None, version=version)
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            try:
                services.challenger_start(
                    actor=request.user,
                    endpoint_name=data["endpoint"].name,
                    version=version.version,
                    model_name=version.registered_model.name,
                    percent=data["percent"],
                    reason=data["reason"],
                    gate_override_reason=data["gate_override_reason"],
                )
            except GovernanceError as exc:
                form.add_error(None, exc.message)
                messages.error(request, f"Start challenger refused: {exc.message}")
            else:
                messages.success(request, f"{version} started as a challenger on {data['endpoint'].name}.")
                return HttpResponseRedirect(
                    reverse("admin:routing_endpoint_change", args=[data["endpoint"].pk])
                )
        return self._form_page(request, form, f"Start {version} as challenger on endpoint…", back, None)

    def _form_page(
        self, request: HttpRequest, form: django_forms.Form, title: str, back: str, endpoint: Endpoint | None
    ) -> HttpResponse:
        context = {
            **self.admin_site.each_context(request),
            "title": title,
            "form": form,
            "back": back,
            "endpoint": endpoint,
            "opts": self.model._meta,
        }
        return TemplateResponse(request, "admin/routing/action_form.html", context)


@admin.register(Variant)
class VariantAdmin(ReadOnlyAdmin):
    """Every variant ever, retired ones included; read-only (change them on the endpoint page)."""

    list_display = ("endpoint", "name", "role", "model_version", "weight", "mirror_percent", "backend")
    list_filter = ("role", "backend", "endpoint")
    list_select_related = ("endpoint", "model_version__registered_model")


@admin.register(PromotionRequest)
class PromotionRequestAdmin(ReadOnlyAdmin):
    """Every promotion and traffic-change request and its decision; read-only (decide on the endpoint page)."""

    list_display = (
        "endpoint",
        "kind",
        "summary",
        "status",
        "requested_by",
        "decided_by",
        "created_at",
        "reason",
    )
    list_filter = ("status", "kind", "endpoint")
    list_select_related = ("endpoint", "variant", "requested_by", "decided_by")


@admin.register(AliasPush)
class AliasPushAdmin(ReadOnlyAdmin):
    """The alias outbox: every push of MLflow aliases and tags, applied or not; read-only."""

    list_display = (
        "id",
        "registered_model",
        "endpoint",
        "action",
        "status",
        "attempts",
        "created_at",
        "applied_at",
    )
    list_filter = ("status",)
    list_select_related = ("registered_model", "endpoint")


class GovernedModelVersionAdmin(ModelVersionAdmin):
    """The registry's version page plus "start as challenger on endpoint…" (action and button)."""

    actions = ["start_as_challenger"]
    fieldsets = (*ModelVersionAdmin.fieldsets, ("Routing", {"fields": ("start_challenger_button",)}))

    @admin.action(description="Start as challenger on endpoint…")
    def start_as_challenger(self, request: HttpRequest, queryset: Any) -> HttpResponse | None:
        if queryset.count() != 1:
            messages.error(request, "Select exactly one version to start as a challenger.")
            return None
        return HttpResponseRedirect(reverse("admin:routing_start_version", args=[queryset.get().pk]))

    @admin.display(description="Endpoints")
    def start_challenger_button(self, obj: ModelVersion) -> str:
        url = reverse("admin:routing_start_version", args=[obj.pk])
        return format_html(
            '<a class="button" id="start-challenger" href="{}">Start as challenger on endpoint…</a>', url
        )


admin.site.unregister(ModelVersion)
admin.site.register(ModelVersion, GovernedModelVersionAdmin)
