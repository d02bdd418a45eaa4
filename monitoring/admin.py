"""Drift in the admin: results per feature with PSI charts, and the references they use.

Both are read-only: results come from ``compute_drift``, references from MLflow or the log.
The per-endpoint panel (traffic share and drift per variant) is the ``endpoint_monitoring_panel``
template tag, shown on the drift overview here and added below routing's Endpoint change page
by ``attach_panel_to_endpoint_admin``: monitoring reads routing, while routing imports nothing of
monitoring but the ``monitoring.metrics`` leaf (the import-linter contracts in pyproject.toml).
"""

from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import URLPattern, path
from django.utils.html import format_html

from monitoring.charts import psi_sparkline
from monitoring.drift import PSI_THRESHOLD
from monitoring.models import DriftReference, DriftResult
from registry.admin import ReadOnlyAdmin


@admin.register(DriftResult)
class DriftResultAdmin(ReadOnlyAdmin):
    list_display = (
        "computed_at",
        "endpoint",
        "variant",
        "model_version",
        "feature",
        "psi_value",
        "psi_trend",
        "ks_pvalue",
        "chi2_pvalue",
        "n_live",
        "reference_kind",
    )
    list_filter = ("endpoint", "variant", "reference_kind", "feature_kind")
    search_fields = ("feature", "endpoint", "variant", "model_name")
    date_hierarchy = "computed_at"
    change_list_template = "monitoring/driftresult_change_list.html"

    @admin.display(description="PSI", ordering="psi")
    def psi_value(self, obj: DriftResult) -> str:
        if obj.psi > PSI_THRESHOLD:
            return format_html('<strong style="color:#ba2121">{} &#9888;</strong>', f"{obj.psi:.3f}")
        return f"{obj.psi:.3f}"

    @admin.display(description="PSI over time")
    def psi_trend(self, obj: DriftResult) -> str:
        history = DriftResult.objects.filter(
            endpoint=obj.endpoint,
            variant=obj.variant,
            model_version=obj.model_version,
            feature=obj.feature,
            computed_at__lte=obj.computed_at,
        ).order_by("-computed_at")[:30]
        return psi_sparkline([r.psi for r in reversed(history)], width=100, height=20)

    def get_urls(self) -> list[URLPattern]:
        overview = path(
            "overview/",
            self.admin_site.admin_view(self.overview_view),
            name="monitoring_driftresult_overview",
        )
        return [overview, *super().get_urls()]

    def overview_view(self, request: HttpRequest) -> HttpResponse:
        """Traffic and drift per variant for every endpoint (or ?endpoint=NAME)."""
        names = sorted(set(DriftResult.objects.values_list("endpoint", flat=True)) | _endpoint_names())
        if request.GET.get("endpoint"):
            names = [n for n in names if n == request.GET["endpoint"]]
        context = {
            **self.admin_site.each_context(request),
            "title": "Drift and traffic by endpoint",
            "opts": self.model._meta,
            "endpoint_names": names,
        }
        return TemplateResponse(request, "monitoring/drift_overview.html", context)


def _endpoint_names() -> set[str]:
    from routing.models import Endpoint

    return set(Endpoint.objects.values_list("name", flat=True))


@admin.register(DriftReference)
class DriftReferenceAdmin(ReadOnlyAdmin):
    list_display = ("model_name", "model_version", "kind", "source", "feature_count", "created_at")
    list_filter = ("kind",)
    search_fields = ("model_name",)
    exclude = ("reference",)
    readonly_fields = ("model_name", "model_version", "kind", "source", "bootstrap_until", "created_at")

    @admin.display(description="Features")
    def feature_count(self, obj: DriftReference) -> int:
        return len(obj.reference.get("features", {}))


ROUTING_ENDPOINT_TEMPLATE = "admin/routing/endpoint/change_form.html"


def attach_panel_to_endpoint_admin(site: admin.AdminSite = admin.site) -> bool:
    """Show traffic and drift per variant at the bottom of routing's Endpoint change page.

    Our template extends routing's, so the governance buttons stay; if routing changes its
    template, the panel is left off rather than hiding routing's page.
    """
    from routing.models import Endpoint

    try:
        endpoint_admin = site.get_model_admin(Endpoint)
    except admin.sites.NotRegistered:
        return False
    if endpoint_admin.change_form_template != ROUTING_ENDPOINT_TEMPLATE:
        return False
    endpoint_admin.change_form_template = "monitoring/admin/endpoint_change_form.html"
    return True


# Admin modules are imported in INSTALLED_APPS order, so routing's EndpointAdmin is registered.
attach_panel_to_endpoint_admin()
