"""Routes of the scoring API: ``/predict/<endpoint>`` and ``/predict`` (the default endpoint)."""

from __future__ import annotations

from django.urls import path

from routing.views_predict import predict

urlpatterns = [
    path("predict", predict, name="predict-default"),
    path("predict/<str:endpoint>", predict, name="predict"),
]
