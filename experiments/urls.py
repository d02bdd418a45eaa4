"""Routes of the feedback API: ``POST /feedback/<endpoint>``."""

from __future__ import annotations

from django.urls import path

from experiments.views import feedback

urlpatterns = [path("feedback/<str:endpoint>", feedback, name="feedback")]
