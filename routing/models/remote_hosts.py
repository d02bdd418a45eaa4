"""Which scoring servers a remote variant may call: ``REMOTE_BACKEND_ALLOWED_HOSTS``.

Live client rows are posted to a remote variant's URL, so a URL is a place data goes. Only hosts
an operator listed may receive them (cloud metadata addresses, internal admin services and the
like never can by accident). Governance refuses a variant whose URL is not allowed (400 naming
the setting) and serving checks again before every call, so narrowing the setting takes effect
at once, also for variants saved earlier.

A pattern is ``host`` (any port) or ``host:port``, with shell wildcards in the host
(``*.models.svc.cluster.local``); IPv6 addresses in brackets (``[::1]:5001``). Host names
compare case-insensitively. The default is no pattern at all: remote backends are off until an
operator allows one.
"""

from __future__ import annotations

import fnmatch
from functools import lru_cache
from urllib.parse import urlsplit

from django.conf import settings

SETTING = "REMOTE_BACKEND_ALLOWED_HOSTS"


def pattern_parse(pattern: str) -> tuple[str, int | None]:
    """``(host pattern, port or None)`` from ``host``, ``host:port`` or ``[v6]:port``; ValueError if bad."""
    text = pattern.strip().lower()
    host, port = text, ""
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        if rest and not rest.startswith(":"):
            raise ValueError(f"{pattern!r}: expected [address]:port")
        port = rest[1:]
    elif text.count(":") == 1:
        host, port = text.split(":")
    if not host:
        raise ValueError(f"{pattern!r}: no host")
    if port == "*" or port == "":
        return host, None
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{pattern!r}: the port must be a number from 1 to 65535")
    return host, int(port)


@lru_cache(maxsize=1024)
def _refusal(url: str, patterns: tuple[str, ...]) -> str:
    try:
        parts = urlsplit(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:
        return f"{url!r} is not a valid URL: {exc}"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return f"{url!r} must be an http:// or https:// URL with a host"
    if parts.username or parts.password:
        return f"{url!r} must not carry credentials (they would be shown in the admin and the audit trail)"
    host = parts.hostname.lower()
    for pattern in patterns:
        try:
            allowed_host, allowed_port = pattern_parse(pattern)
        except ValueError:  # settings.py refuses bad patterns at start-up; a test may not
            continue
        if fnmatch.fnmatchcase(host, allowed_host) and allowed_port in (None, port):
            return ""
    where = f"{host}:{port}"
    if not patterns:
        return f"remote backends are off: {SETTING} is empty, so {where} is not allowed"
    return f"{where} is not in {SETTING} ({', '.join(patterns)})"


def remote_url_refusal(url: str) -> str:
    """Why ``url`` may not receive live rows, or ``""`` when its host is allowed."""
    return _refusal(url, tuple(settings.REMOTE_BACKEND_ALLOWED_HOSTS))
