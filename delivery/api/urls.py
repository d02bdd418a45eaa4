"""/api/v1/rollouts/ and /api/v1/bandits/: delivery's routes (mounted beside routing's control API)."""

from __future__ import annotations

from rest_framework.routers import SimpleRouter

from delivery.api import views

router = SimpleRouter()
router.register("rollouts", views.RolloutPlanViewSet, basename="rollout")
router.register("bandits", views.BanditPolicyViewSet, basename="bandit")

urlpatterns = router.urls
