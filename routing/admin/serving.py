"""Admin for what /predict uses: service tokens (create, edit scope, revoke) and the prediction log.

Token changes are front doors over ``routing.governance.tokens``: the add page calls
``service_token_create`` and shows the raw token once, the change page calls
``service_token_update``, the revoke action ``service_token_revoke``. None of them saves a
token row itself, so every change is permission-checked and audited in one place.
"""

from __future__ import annotations

from typing import Any

from django import forms as django_forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import reverse

from routing.governance import forms
from routing.governance.errors import GovernanceError
from routing.governance.permissions import actor_can
from routing.governance.tokens import service_token_create, service_token_revoke, service_token_update
from routing.models import PredictionLog, ServiceToken


@admin.register(ServiceToken)
class ServiceTokenAdmin(admin.ModelAdmin):
    """Tokens are listed here; every change goes through a token service."""

    list_display = (
        "name",
        "prefix",
        "all_endpoints",
        "scopes",
        "can_override",
        "rate_limit_per_second",
        "created_at",
        "revoked_at",
    )
    list_filter = ("can_override", "all_endpoints", ("revoked_at", admin.EmptyFieldListFilter))
    search_fields = ("name", "prefix")
    readonly_fields = ("prefix", "created_at", "revoked_at")
    exclude = ("token_hash",)
    actions = ["revoke"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return actor_can(request.user, "service_token_create")

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # the default form would save the row directly: change_view below calls the service

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # revoke instead: the audit trail keeps what the token was

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return super().has_view_permission(request, obj) or actor_can(request.user, "service_token_update")

    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        actions = super().get_actions(request)
        if not actor_can(request.user, "service_token_revoke"):
            actions.pop("revoke", None)
        return actions

    @admin.action(description="Revoke selected tokens (refused by /predict within ~2 s)")
    def revoke(self, request: HttpRequest, queryset: QuerySet[ServiceToken]) -> None:
        done = 0
        for token in queryset:
            try:
                service_token_revoke(actor=request.user, name=token.name, reason="revoked in the admin")
            except GovernanceError as exc:
                messages.error(request, f"{token.name}: {exc.message}")
            else:
                done += 1
        messages.success(request, f"Revoked {done} token(s).")

    def add_view(self, request: HttpRequest, form_url: str = "", extra_context: Any = None) -> HttpResponse:
        """Create through ``service_token_create``; the raw token is on the answer page, once."""
        if not self.has_add_permission(request):
            return self._refused(request, "create tokens")
        form = forms.ServiceTokenCreateForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            try:
                token, raw = service_token_create(actor=request.user, **form.service_kwargs())
            except GovernanceError as exc:
                form.add_error(None, exc.message)
            else:
                return self._page(request, f"Service token {token.name} created", form, raw_token=raw)
        return self._page(request, "Create service token", form)

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: Any = None
    ) -> HttpResponse:
        """Edit endpoints, scopes, override and rate limit through ``service_token_update``."""
        token = get_object_or_404(ServiceToken, pk=object_id) if str(object_id).isdigit() else None
        if (
            token is None
            or token.revoked_at is not None
            or not actor_can(request.user, "service_token_update")
        ):
            return super().change_view(request, object_id, form_url, extra_context)  # read-only
        initial = {
            "endpoints": list(token.endpoints.all()),
            "all_endpoints": token.all_endpoints,
            "scopes": token.scopes,
            "can_override": token.can_override,
            "rate_limit_per_second": token.rate_limit_per_second,
        }
        form = forms.ServiceTokenScopeForm(request.POST or None, initial=initial)
        if request.method == "POST" and form.is_valid():
            try:
                service_token_update(actor=request.user, name=token.name, **form.service_kwargs())
            except GovernanceError as exc:
                form.add_error(None, exc.message)
            else:
                messages.success(request, f"Service token {token.name} changed.")
                return HttpResponseRedirect(reverse("admin:routing_servicetoken_changelist"))
        return self._page(request, f"Change what {token.name} may call", form)

    def _page(
        self, request: HttpRequest, title: str, form: django_forms.Form, raw_token: str = ""
    ) -> HttpResponse:
        context = {
            **self.admin_site.each_context(request),
            "title": title,
            "form": form,
            "raw_token": raw_token,
            "back": reverse("admin:routing_servicetoken_changelist"),
            "opts": self.model._meta,
        }
        return TemplateResponse(request, "admin/routing/servicetoken/form.html", context)

    def _refused(self, request: HttpRequest, what: str) -> HttpResponse:
        messages.error(request, f"You may not {what}.")
        return HttpResponseRedirect(reverse("admin:routing_servicetoken_changelist"))


@admin.register(PredictionLog)
class PredictionLogAdmin(admin.ModelAdmin):
    list_display = (
        "created_at",
        "endpoint",
        "variant",
        "model_version",
        "is_shadow",
        "latency_ms",
        "request_id",
    )
    list_filter = ("endpoint", "is_shadow", "variant")
    search_fields = ("=request_id",)  # exact: uses the index (paste an X-Request-ID)
    date_hierarchy = "created_at"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
