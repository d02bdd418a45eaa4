"""HTTP to the control plane: one session, two credentials, every refusal as a ``ControlPlaneError``.

The data plane (``/predict``, ``/feedback``, batch jobs) takes a *service token*
(``Authorization: Bearer``); the control API (``/api/v1/``) takes a *user's* API token
(``Authorization: Token``), so governance changes are made by a person with permissions.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import requests

from controlplane_client.errors import ControlPlaneError

USER_AGENT = "controlplane-client/0.1.0"


def env_setting(name: str) -> str | None:
    """``$NAME``, or the contents of the file named by ``$NAME_FILE`` (mounted secrets); None if unset."""
    value = os.environ.get(name)
    if value:
        return value.strip()
    path = os.environ.get(f"{name}_FILE")
    if path:
        try:
            return Path(path).read_text().strip() or None
        except OSError as exc:
            raise ControlPlaneError(0, "config", f"{name}_FILE={path} cannot be read: {exc}") from exc
    return None


class Http:
    """A ``requests`` session bound to one control plane URL and its two credentials."""

    def __init__(
        self,
        url: str,
        token: str | None,
        api_token: str | None,
        timeout: float,
        session: requests.Session | None,
    ) -> None:
        if not url or not url.startswith(("http://", "https://")):
            raise ControlPlaneError(
                0, "config", f"The control plane URL must start with http:// or https://, not {url!r}."
            )
        self.url = url.rstrip("/") + "/"
        self.token, self.api_token, self.timeout = token, api_token, timeout
        self.session = session or requests.Session()
        self.session.headers.setdefault("User-Agent", USER_AGENT)

    def absolute(self, path_or_url: str) -> str:
        """A path (``/predict/x``) or a URL the server handed back, as an absolute URL."""
        return urljoin(self.url, path_or_url)

    def service_auth(self) -> dict[str, str]:
        if not self.token:
            raise ControlPlaneError(
                0,
                "no_token",
                "No service token: pass token=... or set CONTROLPLANE_TOKEN (/predict, /feedback and "
                "batch jobs need one; `manage.py create_service_token` makes it).",
            )
        return {"Authorization": f"Bearer {self.token}"}

    def api_auth(self) -> dict[str, str]:
        if not self.api_token:
            raise ControlPlaneError(
                0,
                "no_api_token",
                "No API token: pass api_token=... or set CONTROLPLANE_API_TOKEN (the /api/v1/ control "
                "API acts as a user; `manage.py drf_create_token USERNAME` makes one).",
            )
        return {"Authorization": f"Token {self.api_token}"}

    def send(self, method: str, path: str, *, auth: dict[str, str], **kwargs: Any) -> requests.Response:
        """One request; a non-2xx answer or no answer at all raises ``ControlPlaneError``."""
        headers = {**kwargs.pop("headers", {}), **auth}
        kwargs.setdefault("timeout", self.timeout)
        url = self.absolute(path)
        try:
            response = self.session.request(method, url, headers=headers, **kwargs)
        except requests.RequestException as exc:
            raise ControlPlaneError(0, "unreachable", f"{method} {url} failed: {exc}") from exc
        if response.status_code >= 400:
            try:
                body = response.json()
            except ValueError:
                body = None
            raise ControlPlaneError.from_response(response.status_code, body, response.text)
        return response

    def api(self, method: str, path: str, body: dict[str, Any] | None = None, **params: Any) -> Any:
        """A call to ``/api/v1/<path>`` with the user's token; the decoded JSON answer.

        Fields left as None are not sent, so the server applies its defaults.
        """
        response = self.send(
            method,
            f"api/v1/{path.lstrip('/')}",
            auth=self.api_auth(),
            json=None if body is None else {k: v for k, v in body.items() if v is not None},
            params={k: v for k, v in params.items() if v is not None} or None,
        )
        return response.json() if response.content else None

    def api_pages(self, path: str, limit: int | None = None, **params: Any) -> Iterator[dict[str, Any]]:
        """Every row of a paginated ``/api/v1/`` listing (LimitOffsetPagination), at most ``limit``."""
        page = self.api("GET", path, **params)
        seen = 0
        while True:
            rows = page["results"] if isinstance(page, dict) and "results" in page else page
            for row in rows:
                if limit is not None and seen >= limit:
                    return
                seen += 1
                yield row
            following = page.get("next") if isinstance(page, dict) else None
            if not following:
                return
            page = self.send("GET", following, auth=self.api_auth()).json()
