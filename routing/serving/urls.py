"""Routes of the scoring API: ``/predict/<endpoint>``, ``/predict`` (the default endpoint) and
batch jobs under ``/predict/<endpoint>/jobs``."""

from __future__ import annotations

from django.urls import path

from routing.serving import batch_views
from routing.serving.views import predict

urlpatterns = [
    path("predict", predict, name="predict-default"),
    path("predict/<str:endpoint>", predict, name="predict"),
    path("predict/<str:endpoint>/jobs", batch_views.jobs, name="batch-jobs"),
    path("predict/<str:endpoint>/jobs/<uuid:job_id>", batch_views.job, name="batch-job"),
    path(
        "predict/<str:endpoint>/jobs/<uuid:job_id>/results", batch_views.job_results, name="batch-job-results"
    ),
    path("predict/<str:endpoint>/jobs/<uuid:job_id>/errors", batch_views.job_errors, name="batch-job-errors"),
]
