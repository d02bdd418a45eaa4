"""Liveness and readiness probes.

Readiness checks the database and asks each app that can hold a worker back (routing's model
loader, once it exists) through ``READINESS_CHECKS``: a list of dotted paths to callables that
return a list of problems, empty when ready.
"""

from __future__ import annotations

from django.conf import settings
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.utils.module_loading import import_string


def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


def readyz(request: HttpRequest) -> JsonResponse:
    problems: list[str] = []
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception as exc:  # any driver error means not ready
        problems.append(f"database unreachable: {exc}")
    for path in getattr(settings, "READINESS_CHECKS", []):
        problems.extend(import_string(path)())
    status = 503 if problems else 200
    return JsonResponse(
        {"status": "ready" if not problems else "not ready", "problems": problems}, status=status
    )
