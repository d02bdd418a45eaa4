"""Admin for the serving workers' status rows: read-only, written by the workers themselves."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib import admin
from django.http import HttpRequest
from django.utils import timezone

from routing.models import WorkerStatus


@admin.register(WorkerStatus)
class WorkerStatusAdmin(admin.ModelAdmin):
    list_display = ("host", "pid", "is_live", "started_at", "heartbeat_at", "generation", "held", "failed")
    list_filter = ("host",)
    search_fields = ("host",)
    readonly_fields = ("host", "pid", "started_at", "heartbeat_at", "generation", "loaded", "failures")
    ordering = ("-heartbeat_at",)

    @admin.display(boolean=True, description="live")
    def is_live(self, obj: WorkerStatus) -> bool:
        return obj.heartbeat_at >= timezone.now() - timedelta(seconds=settings.WORKER_STATUS_STALE_SECONDS)

    @admin.display(description="loaded")
    def held(self, obj: WorkerStatus) -> str:
        return ", ".join(f"{e.get('model')} v{e.get('version')}" for e in obj.loaded) or "-"

    @admin.display(description="failed to load")
    def failed(self, obj: WorkerStatus) -> str:
        return (
            "; ".join(f"{e.get('model')} v{e.get('version')}: {e.get('error')}" for e in obj.failures) or "-"
        )

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
