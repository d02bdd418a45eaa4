"""Liveness and readiness probes.

``/healthz``: the process answers. ``/readyz``: each check named in ``READINESS_CHECKS`` (dotted
paths to callables) says whether this worker can take traffic; the serving half's check reads its
routing table and never queries the database or loads a model (``routing.serving.readiness``).

A check returns ``{"name", "ready", "problems", ...details}``. Anyone gets the status
(``{"status": "ready"}`` or ``{"status": "not ready"}``, 200 or 503): that is all a kubelet or a
load balancer needs. Authenticated staff also get the problems and the details (which may name
database hosts and load errors); a staff check that cannot read the session (the database is
down) answers as for anyone.
"""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.http import HttpRequest, JsonResponse
from django.utils.module_loading import import_string

logger = logging.getLogger(__name__)


def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


def _check(path: str) -> dict[str, Any]:
    try:
        return import_string(path)()
    except Exception as exc:  # a broken check means not ready, never a 500
        logger.exception("readiness check %s failed", path)
        return {"name": path, "ready": False, "problems": [f"{path} failed: {type(exc).__name__}: {exc}"]}


def _is_staff(request: HttpRequest) -> bool:
    try:
        return bool(request.user.is_authenticated and request.user.is_staff)
    except Exception:  # the session or user cannot be read (database down): anonymous
        return False


def readyz(request: HttpRequest) -> JsonResponse:
    reports = [_check(path) for path in settings.READINESS_CHECKS]
    ready = all(r.get("ready") for r in reports)
    body: dict[str, Any] = {"status": "ready" if ready else "not ready"}
    if _is_staff(request):
        body["problems"] = [p for r in reports for p in r.get("problems", [])]
        for r in reports:
            body[str(r.get("name", "check"))] = {
                k: v for k, v in r.items() if k not in ("name", "ready", "problems")
            }
    return JsonResponse(body, status=200 if ready else 503)
