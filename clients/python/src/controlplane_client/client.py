"""``ControlPlane``: one object for the data plane (service token) and the control API (user token)."""

from __future__ import annotations

import requests

from controlplane_client.dataplane import DataPlaneCalls
from controlplane_client.errors import ControlPlaneError
from controlplane_client.governance import GovernanceCalls
from controlplane_client.transport import Http, env_setting


class ControlPlane(DataPlaneCalls, GovernanceCalls):
    """A client of one control plane.

    >>> cp = ControlPlane("http://127.0.0.1:8000", token="svc-...", api_token="0f3c...")
    >>> cp.predict("demo", frame).predictions
    >>> cp.start_challenger("demo", version=3, percent=10, reason="xgboost beats it offline")

    Arguments left out come from the environment: ``CONTROLPLANE_URL``, ``CONTROLPLANE_TOKEN``
    (service token: /predict, /feedback, batch jobs) and ``CONTROLPLANE_API_TOKEN`` (a user's
    API token: /api/v1/), each also as ``<NAME>_FILE`` holding the value.
    """

    def __init__(
        self,
        url: str | None = None,
        token: str | None = None,
        *,
        api_token: str | None = None,
        timeout: float = 30.0,
        session: requests.Session | None = None,
    ) -> None:
        url = url or env_setting("CONTROLPLANE_URL")
        if not url:
            raise ControlPlaneError(
                0, "config", "No control plane URL: pass url=... or set CONTROLPLANE_URL."
            )
        self.http = Http(
            url,
            token or env_setting("CONTROLPLANE_TOKEN"),
            api_token or env_setting("CONTROLPLANE_API_TOKEN"),
            timeout,
            session,
        )

    @property
    def url(self) -> str:
        return self.http.url

    def __repr__(self) -> str:
        return f"ControlPlane({self.http.url!r})"
