"""The data plane calls: /predict, /feedback and batch jobs, with the service token (contract's HTTP)."""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from controlplane_client.errors import ControlPlaneError
from controlplane_client.payloads import batch_body, scoring_body
from controlplane_client.transport import Http

TERMINAL = ("succeeded", "failed", "cancelled")


@dataclass(frozen=True)
class Prediction:
    """A /predict answer: the predictions and which variant and model version made them."""

    predictions: list[Any]
    endpoint: str
    variant: str
    model: str
    model_version: int | str
    request_id: str
    raw: dict[str, Any] = field(repr=False)

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> Prediction:
        return cls(
            predictions=body.get("predictions", []),
            endpoint=str(body.get("endpoint", "")),
            variant=str(body.get("variant", "")),
            model=str(body.get("model", "")),
            model_version=body.get("model_version", ""),
            request_id=str(body.get("request_id", "")),
            raw=body,
        )


@dataclass(frozen=True)
class FeedbackResult:
    """How many feedback items were accepted, and why the others were refused (index, code, message)."""

    accepted: int
    rejected: list[dict[str, Any]]


@dataclass(frozen=True)
class Job:
    """A submitted batch job: its id and where its status is read."""

    id: str
    endpoint: str
    status_url: str


@dataclass(frozen=True)
class JobStatus:
    """A batch job's state: ``status`` is queued, running, succeeded, failed or cancelled."""

    status: str
    progress: float
    rows: int
    errors: int
    results_url: str | None
    errors_url: str | None
    raw: dict[str, Any] = field(repr=False)

    @property
    def done(self) -> bool:
        return self.status in TERMINAL

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> JobStatus:
        return cls(
            status=str(body.get("status", "")),
            progress=float(body.get("progress") or 0.0),
            rows=int(body.get("rows") or 0),
            errors=int(body.get("errors") or 0),
            results_url=body.get("results_url"),
            errors_url=body.get("errors_url"),
            raw=body,
        )


def _name(endpoint: str) -> str:
    if not endpoint or not isinstance(endpoint, str):
        raise ValueError(f"An endpoint name is required, not {endpoint!r}.")
    return quote(endpoint, safe="")


class DataPlaneCalls:
    """/predict, /feedback and batch jobs; mixed into ``ControlPlane``."""

    http: Http

    def predict(
        self,
        endpoint: str,
        data: Any,
        *,
        unit_key: str | None = None,
        variant: str | None = None,
        params: Mapping[str, Any] | None = None,
    ) -> Prediction:
        """Score ``data`` (a DataFrame, a list of row dicts, or an MLflow scoring dict) on ``endpoint``.

        ``unit_key`` keeps a user on one variant while weights stay put; ``variant`` forces one
        (only for tokens allowed to override).
        """
        headers = {"X-Unit-Key": unit_key} if unit_key else {}
        if variant:
            headers["X-Variant"] = variant
        response = self.http.send(
            "POST",
            f"predict/{_name(endpoint)}",
            auth=self.http.service_auth(),
            json=scoring_body(data, params),
            headers=headers,
        )
        return Prediction.from_json(response.json())

    def feedback(self, endpoint: str, items: Iterable[Mapping[str, Any]]) -> FeedbackResult:
        """Send ground truth or outcomes (build items with ``ground_truth`` and ``outcome``).

        Needs a token with the ``feedback`` scope. Items the server refuses come back in
        ``rejected`` with their index; resending an item is harmless (idempotent per request id and row).
        """
        body = {"items": [dict(item) for item in items]}
        if not body["items"]:
            raise ValueError("feedback() needs at least one item.")
        response = self.http.send(
            "POST", f"feedback/{_name(endpoint)}", auth=self.http.service_auth(), json=body
        )
        answer = response.json()
        return FeedbackResult(int(answer.get("accepted", 0)), list(answer.get("rejected", [])))

    def submit_job(
        self, endpoint: str, data: Any, *, variant: str | None = None, content_type: str | None = None
    ) -> Job:
        """Start a batch scoring job (token scope ``batch``): a DataFrame, row dicts, or a CSV / JSON-lines file."""
        body, kind = batch_body(data, content_type)
        response = self.http.send(
            "POST",
            f"predict/{_name(endpoint)}/jobs",
            auth=self.http.service_auth(),
            data=body,
            headers={"Content-Type": kind},
            params={"variant": variant} if variant else None,
        )
        answer = response.json()
        job_id = str(answer["job"])
        status_url = answer.get("status_url") or f"predict/{_name(endpoint)}/jobs/{quote(job_id, safe='')}"
        return Job(job_id, endpoint, self.http.absolute(status_url))

    def job_status(self, job: Job) -> JobStatus:
        """The job's current status."""
        response = self.http.send("GET", job.status_url, auth=self.http.service_auth())
        return JobStatus.from_json(response.json())

    def cancel_job(self, job: Job) -> None:
        """Ask the server to cancel the job (``DELETE`` on its status URL)."""
        self.http.send("DELETE", job.status_url, auth=self.http.service_auth())

    def wait_for_job(self, job: Job, *, timeout: float = 600.0, poll_seconds: float = 1.0) -> JobStatus:
        """Poll until the job succeeded, failed or was cancelled; ``ControlPlaneError`` after ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            status = self.job_status(job)
            if status.done:
                return status
            if time.monotonic() >= deadline:
                raise ControlPlaneError(
                    0, "timeout", f"Job {job.id} is still {status.status} after {timeout:.0f} s."
                )
            time.sleep(poll_seconds)

    def job_results(self, status: JobStatus, *, errors: bool = False) -> bytes:
        """The job's results (or its error rows with ``errors=True``) as the server sends them."""
        url = status.errors_url if errors else status.results_url
        if not url:
            what = "error rows" if errors else "results"
            raise ControlPlaneError(
                0, "not_ready", f"The job has no {what} URL yet (status {status.status})."
            )
        return self.http.send("GET", url, auth=self.http.service_auth()).content
