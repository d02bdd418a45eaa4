"""Admin for the registry mirror (read-only: MLflow owns these fields) and the audit trail."""

from __future__ import annotations

import json
from typing import Any

from django.contrib import admin
from django.http import HttpRequest
from django.utils.html import format_html, format_html_join

from registry.models import AuditEvent, ModelVersion, RegisteredModel


class ReadOnlyAdmin(admin.ModelAdmin):
    """Browsable and searchable, never editable: the data comes from MLflow or is an audit row."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


def _badges(values: list[str]) -> str:
    return format_html_join(
        " ",
        '<span style="background:#264b5d;color:#fff;border-radius:3px;padding:1px 6px">{}</span>',
        ((v,) for v in values),
    )


def _table(rows: list[tuple[str, Any]], header: tuple[str, str]) -> str:
    if not rows:
        return "—"
    body = format_html_join("", "<tr><td>{}</td><td>{}</td></tr>", rows)
    return format_html("<table><tr><th>{}</th><th>{}</th></tr>{}</table>", *header, body)


class ModelVersionInline(admin.TabularInline):
    model = ModelVersion
    fields = ("version", "status", "aliases", "run_id", "deleted_in_mlflow")
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(RegisteredModel)
class RegisteredModelAdmin(ReadOnlyAdmin):
    list_display = ("name", "alias_badges", "version_count", "deleted_in_mlflow", "mlflow_updated_at")
    search_fields = ("name", "description")
    list_filter = ("deleted_in_mlflow",)
    readonly_fields = (
        "name",
        "description",
        "alias_badges",
        "tags",
        "mlflow_created_at",
        "mlflow_updated_at",
        "deleted_in_mlflow",
        "synced_at",
    )
    exclude = ("aliases",)
    inlines = [ModelVersionInline]

    @admin.display(description="Aliases")
    def alias_badges(self, obj: RegisteredModel) -> str:
        return _badges([f"{a} → v{v}" for a, v in sorted(obj.aliases.items())]) or "—"

    @admin.display(description="Versions")
    def version_count(self, obj: RegisteredModel) -> int:
        return obj.versions.count()


@admin.register(ModelVersion)
class ModelVersionAdmin(ReadOnlyAdmin):
    list_display = (
        "__str__",
        "status",
        "alias_badges",
        "signature_summary",
        "headline_metrics",
        "deleted_in_mlflow",
        "mlflow_created_at",
    )
    list_filter = ("status", "deleted_in_mlflow", "registered_model")
    search_fields = ("registered_model__name", "run_id", "model_id", "source", "description")
    list_select_related = ("registered_model",)
    fieldsets = (
        (
            None,
            {
                "fields": (
                    "registered_model",
                    "version",
                    "status",
                    "status_message",
                    "alias_badges",
                    "description",
                    "deleted_in_mlflow",
                )
            },
        ),
        ("Signature", {"fields": ("signature_inputs_table", "signature_outputs_table")}),
        ("Run", {"fields": ("run_id", "metrics_table", "params_table")}),
        ("Model", {"fields": ("source", "model_id", "flavors", "tags", "details_error")}),
        ("Times", {"fields": ("mlflow_created_at", "mlflow_updated_at", "synced_at")}),
    )

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return [f for _, opts in self.fieldsets for f in opts["fields"]]

    @admin.display(description="Aliases")
    def alias_badges(self, obj: ModelVersion) -> str:
        return _badges(obj.aliases) or "—"

    @admin.display(description="Signature")
    def signature_summary(self, obj: ModelVersion) -> str:
        cols = obj.signature_inputs
        if not cols:
            return "none"
        return (
            f"{len(cols)} input(s): "
            + ", ".join(c.get("name", "?") for c in cols[:4])
            + ("…" if len(cols) > 4 else "")
        )

    @admin.display(description="Metrics")
    def headline_metrics(self, obj: ModelVersion) -> str:
        return ", ".join(f"{k}={v:.4g}" for k, v in sorted(obj.metrics.items())[:3]) or "—"

    @admin.display(description="Inputs")
    def signature_inputs_table(self, obj: ModelVersion) -> str:
        return _table(
            [(c.get("name", ""), c.get("type", "")) for c in obj.signature_inputs or []], ("column", "type")
        )

    @admin.display(description="Outputs")
    def signature_outputs_table(self, obj: ModelVersion) -> str:
        return _table(
            [(c.get("name", "(tensor)"), c.get("type", "")) for c in obj.signature_outputs or []],
            ("column", "type"),
        )

    @admin.display(description="Metrics")
    def metrics_table(self, obj: ModelVersion) -> str:
        return _table(sorted(obj.metrics.items()), ("metric", "value"))

    @admin.display(description="Params")
    def params_table(self, obj: ModelVersion) -> str:
        return _table(sorted(obj.params.items()), ("param", "value"))


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    list_display = (
        "created_at",
        "actor",
        "actor_kind",
        "action",
        "object_repr",
        "short_reason",
        "request_id",
    )
    list_filter = ("actor_kind", "action", "object_type")
    search_fields = ("actor", "action", "object_repr", "reason", "request_id")
    date_hierarchy = "created_at"
    readonly_fields = (
        "created_at",
        "actor",
        "actor_kind",
        "user",
        "action",
        "object_type",
        "object_id",
        "object_repr",
        "before_json",
        "after_json",
        "reason",
        "request_id",
    )
    exclude = ("before", "after")

    @admin.display(description="Reason")
    def short_reason(self, obj: AuditEvent) -> str:
        return obj.reason[:80]

    @admin.display(description="Before")
    def before_json(self, obj: AuditEvent) -> str:
        return format_html("<pre>{}</pre>", json.dumps(obj.before, indent=2, default=str))

    @admin.display(description="After")
    def after_json(self, obj: AuditEvent) -> str:
        return format_html("<pre>{}</pre>", json.dumps(obj.after, indent=2, default=str))
