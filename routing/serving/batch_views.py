"""``/predict/<endpoint>/jobs``: submit a batch scoring job, read its status and files, cancel it.

A token with the ``batch`` scope that is allowed on the endpoint may submit jobs and see every
job of that endpoint. Refusals are the contract's error body (``routing.serving.errors``); any
unexpected failure still answers that body with 500.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from django.http import FileResponse, HttpRequest, HttpResponse
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt

from routing.models import BatchJob
from routing.serving import auth
from routing.serving.batch import batch_job_cancel, batch_job_create, storage
from routing.serving.errors import ServingError
from routing.serving.table import TABLE, EndpointRoute
from routing.serving.views import error_answer, json_answer

logger = logging.getLogger(__name__)


def _guarded(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        try:
            return view(request, *args, **kwargs)
        except ServingError as exc:
            return error_answer(exc)
        except Exception:
            request_id = getattr(request, "request_id", "")
            logger.exception("%s failed unexpectedly (request %s)", request.path[:200], request_id)
            return error_answer(
                ServingError(
                    500,
                    "internal_error",
                    "the server failed to answer; quote the request id",
                    {"request_id": request_id},
                )
            )

    return csrf_exempt(wrapper)


def _allowed(request: HttpRequest, endpoint: str) -> EndpointRoute:
    snapshot = TABLE.current()
    token = auth.authenticate(request.META.get("HTTP_AUTHORIZATION", ""), snapshot)
    route = snapshot.endpoints.get(endpoint)
    if route is None:
        raise ServingError(404, "endpoint_not_found", f"no endpoint named {endpoint[:200]!r}")
    auth.authorize(token, endpoint, scope="batch")
    request.batch_token = token  # type: ignore[attr-defined]
    return route


def _job(endpoint: str, job_id: Any) -> BatchJob:
    job = BatchJob.objects.filter(pk=job_id, endpoint__name=endpoint).first()
    if job is None:
        raise ServingError(404, "job_not_found", f"no job {job_id} on endpoint {endpoint!r}")
    return job


def job_status(job: BatchJob) -> dict[str, Any]:
    """The job as the contract shows it."""
    urls = {
        kind: reverse(f"batch-job-{kind}", args=[job.endpoint.name, job.pk])
        if getattr(job, f"{kind}_file")
        else None
        for kind in ("results", "errors")
    }
    return {
        "job": str(job.pk),
        "endpoint": job.endpoint.name,
        "status": job.status,
        "progress": round(job.progress, 4),
        "rows": job.rows,
        "errors": job.error_rows,
        "variant": job.variant,
        "model": job.model_name,
        "model_version": job.model_version,
        "results_url": urls["results"],
        "errors_url": urls["errors"],
        "message": job.message,
        "created_at": job.created_at.isoformat(),
        "started_at": job.started_at.isoformat() if job.started_at else None,
        "finished_at": job.finished_at.isoformat() if job.finished_at else None,
    }


@_guarded
def jobs(request: HttpRequest, endpoint: str) -> HttpResponse:
    """POST a CSV or JSON-lines body: 202 with the job and its status URL."""
    if request.method != "POST":
        raise ServingError(405, "method_not_allowed", "use POST to submit a job")
    route = _allowed(request, endpoint)
    job = batch_job_create(
        route=route,
        token=request.batch_token,  # type: ignore[attr-defined]
        variant_name=request.GET.get("variant", ""),
        content_type=request.META.get("CONTENT_TYPE", ""),
        body=request,
    )
    status_url = reverse("batch-job", args=[endpoint, job.pk])
    body = {**job_status(job), "status_url": status_url}
    return json_answer(202, body, {"Location": status_url})


@_guarded
def job(request: HttpRequest, endpoint: str, job_id: Any) -> HttpResponse:
    """GET the status; DELETE cancels (a finished job is left as it is)."""
    _allowed(request, endpoint)
    found = _job(endpoint, job_id)
    if request.method == "DELETE":
        found = batch_job_cancel(job=found)
    elif request.method != "GET":
        raise ServingError(405, "method_not_allowed", "use GET or DELETE")
    return json_answer(200, job_status(found))


def _file(request: HttpRequest, endpoint: str, job_id: Any, kind: str) -> HttpResponse:
    if request.method != "GET":
        raise ServingError(405, "method_not_allowed", "use GET")
    _allowed(request, endpoint)
    found = _job(endpoint, job_id)
    name = getattr(found, f"{kind}_file")
    if not name:
        raise ServingError(409, "not_ready", f"job {found.pk} is {found.status}; no {kind} file (yet)")
    csv = kind == "results" and found.input_format == BatchJob.Format.CSV
    return FileResponse(
        storage().open(name, "rb"),
        content_type="text/csv" if csv else "application/x-ndjson",
        as_attachment=False,
    )


@_guarded
def job_results(request: HttpRequest, endpoint: str, job_id: Any) -> HttpResponse:
    """The results: CSV ``row,prediction`` for a CSV job, JSON lines ``{"row", "prediction"}`` otherwise."""
    return _file(request, endpoint, job_id, "results")


@_guarded
def job_errors(request: HttpRequest, endpoint: str, job_id: Any) -> HttpResponse:
    """The refused rows, JSON lines ``{"row", "line", "code", "message"}``."""
    return _file(request, endpoint, job_id, "errors")
