"""The WSGI application gunicorn runs: the scoring routes straight to their view, the rest to Django.

``ServingPathMiddleware`` already answers ``/predict`` with only the request id around it, but
under Django's handler a request still pays for what the admin and the API need: the
``request_started`` and ``request_finished`` signals (closing database connections and caches
that /predict never opens) and the middleware chain's wrappers. Measured in a real worker
(``bench/stages.py``, docs/performance.md) that was about a tenth of a one-row request.

``ServingDispatch`` resolves the path against ``settings.SERVING_URLCONF`` first. A scoring route
gets the same ``WSGIRequest``, the same ``ServingPathMiddleware.serve`` (request id, host check,
``X-Content-Type-Options``, the view), the same answer for an exception (Django's
``response_for_exception``: ``DisallowedHost`` is a 400) and the same log line for a 4xx/5xx;
every other path goes to Django's handler unchanged. The Django test client and ``runserver``
keep going through the middleware, so the view is the same code either way.

Only views that touch no database belong in ``SERVING_URLCONF``: nothing here closes a
connection after them.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from typing import Any

from django.conf import settings
from django.core.handlers.exception import response_for_exception
from django.core.handlers.wsgi import WSGIHandler, WSGIRequest, get_path_info
from django.http import HttpResponse
from django.urls import Resolver404, ResolverMatch, get_resolver
from django.utils.log import log_response

from controlplane.middleware import ServingPathMiddleware


class ServingDispatch:
    """WSGI app: scoring routes to ``ServingPathMiddleware.serve`` directly, anything else to Django."""

    def __init__(self, django_app: WSGIHandler) -> None:
        self.django = django_app
        self.resolver = get_resolver(settings.SERVING_URLCONF)
        self.serving = ServingPathMiddleware(django_app.get_response)
        # Resolving a path builds a ResolverMatch (~40 us on the bench machine, a tenth of what
        # the rest of the dispatch costs); the answer for a path never changes, so the last
        # paths seen (endpoint names, the admin's pages) are kept, boundedly.
        self._match = functools.lru_cache(maxsize=1024)(self._resolve)

    def _resolve(self, path: str) -> ResolverMatch | None:
        try:
            return self.resolver.resolve(path)
        except Resolver404:
            return None

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        match = self._match(get_path_info(environ) or "/")
        if match is None:
            return self.django(environ, start_response)
        request = WSGIRequest(environ)
        request.resolver_match = match
        try:
            response = self.serving.serve(request)
        except Exception as exc:  # what Django's handler would answer (DisallowedHost: 400)
            response = response_for_exception(request, exc)
        if response.status_code >= 400:
            log_response("%s: %s", response.reason_phrase, request.path, response=response, request=request)
        start_response(f"{response.status_code} {response.reason_phrase}", _headers(response))
        if response.streaming:  # batch-job results and errors files: streamed, closed by the server
            return response
        return [response.content]


def _headers(response: HttpResponse) -> list[tuple[str, str]]:
    return [*response.items(), *(("Set-Cookie", c.output(header="")) for c in response.cookies.values())]
