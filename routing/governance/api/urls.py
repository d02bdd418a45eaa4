"""/api/v1/: the control API's routes."""

from __future__ import annotations

from rest_framework.routers import DefaultRouter

from routing.governance.api import views

router = DefaultRouter()
router.register("endpoints", views.EndpointViewSet, basename="endpoint")
router.register("promotion-requests", views.PromotionRequestViewSet, basename="promotion-request")
router.register("variants", views.VariantViewSet, basename="variant")
router.register("versions", views.ModelVersionViewSet, basename="model-version")
router.register("audit-events", views.AuditEventViewSet, basename="audit-event")

urlpatterns = router.urls
