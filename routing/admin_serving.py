"""Admin for what /predict uses: service tokens (view, revoke) and the prediction log (read-only).

Tokens are created with ``manage.py create_service_token`` (the raw token is printed once);
the admin only shows and revokes them. Imported from ``routing/admin.py``.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from routing.models_serving import PredictionLog, ServiceToken
from routing.tokens import service_token_revoke


@admin.register(ServiceToken)
class ServiceTokenAdmin(admin.ModelAdmin):
    list_display = (
        "name",
        "prefix",
        "all_endpoints",
        "can_override",
        "rate_limit_per_second",
        "created_at",
        "revoked_at",
    )
    list_filter = ("can_override", "all_endpoints", ("revoked_at", admin.EmptyFieldListFilter))
    search_fields = ("name", "prefix")
    readonly_fields = ("prefix", "created_at", "revoked_at")
    exclude = ("token_hash",)
    filter_horizontal = ("endpoints",)
    actions = ["revoke"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # the raw token must be shown once: manage.py create_service_token

    @admin.action(description="Revoke selected tokens (refused by /predict within ~2 s)")
    def revoke(self, request: HttpRequest, queryset: QuerySet[ServiceToken]) -> None:
        for token in queryset:
            service_token_revoke(name=token.name)
        messages.success(request, f"Revoked {queryset.count()} token(s).")


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
