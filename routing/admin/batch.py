"""Admin list of batch scoring jobs, with a progress bar each; read-only (jobs are submitted over HTTP)."""

from __future__ import annotations

from django.contrib import admin
from django.utils.html import format_html

from registry.admin import ReadOnlyAdmin
from routing.models import BatchJob


@admin.register(BatchJob)
class BatchJobAdmin(ReadOnlyAdmin):
    """Every job of the retention period: who sent it, which version scored it, how far it got."""

    list_display = (
        "id",
        "endpoint",
        "status",
        "progress_bar",
        "rows",
        "error_rows",
        "variant",
        "model_version",
        "token_name",
        "created_at",
        "finished_at",
    )
    list_filter = ("status", "endpoint")
    list_select_related = ("endpoint",)
    search_fields = ("id", "token_name", "endpoint__name")

    @admin.display(description="Progress")
    def progress_bar(self, obj: BatchJob) -> str:
        return format_html(
            '<progress class="batch-progress" value="{}" max="1" title="{}%"></progress> {}%',
            f"{obj.progress:.4f}",
            f"{obj.progress * 100:.0f}",
            f"{obj.progress * 100:.0f}",
        )
