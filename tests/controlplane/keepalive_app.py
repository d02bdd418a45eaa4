"""A WSGI app for ``test_keepalive_worker``: one route per response shape gunicorn frames differently."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from typing import Any


def _fixed(start_response: Callable[..., Any], body: bytes, content_type: str) -> list[bytes]:
    start_response("200 OK", [("Content-Type", content_type), ("Content-Length", str(len(body)))])
    return [body]


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    path = environ["PATH_INFO"]
    if path == "/pid":
        return _fixed(start_response, str(os.getpid()).encode(), "text/plain")
    if path == "/empty":
        start_response("204 No Content", [])
        return []
    if path == "/chunked":  # no Content-Length: on a kept-alive connection gunicorn sends chunks
        start_response("200 OK", [("Content-Type", "text/plain")])
        return iter([b"first,", b"second,", b"third"])
    if path == "/file":  # a real file through wsgi.file_wrapper: gunicorn sends it with sendfile
        name = os.environ["KEEPALIVE_TEST_FILE"]
        start_response("200 OK", [("Content-Length", str(os.path.getsize(name)))])
        return environ["wsgi.file_wrapper"](open(name, "rb"))  # the server closes it
    return _fixed(start_response, b'{"ok": true}', "application/json")
