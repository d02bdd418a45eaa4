"""A variant served by a remote MLflow scoring server (``mlflow models serve`` or compatible).

Each call has a short timeout and at most ``retries`` extra attempts on connection errors and
5xx answers; a circuit breaker opens after ``failure_threshold`` consecutive failures and, while
open, fails immediately for ``cooldown`` seconds, then lets one trial call through (half-open).
A dead backend therefore costs a challenger's requests almost nothing: they fall back to the
champion at once.

Only a validation error (400 with one of MLflow's input error codes) is the client's problem
(``RemoteRejected``). Every other answer that is not a 200 with predictions is the backend's
problem and counts against the breaker: 404, 401, 403, 405, 410, 429... (a moved or
misconfigured server answers those for every request) and any 3xx, since redirects are never
followed: the URL was allowed, its redirect target was not. Before each call the URL is checked
against ``REMOTE_BACKEND_ALLOWED_HOSTS`` again (``routing.models.remote_hosts``).
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import requests

from routing.models.remote_hosts import remote_url_refusal
from routing.serving.validation import Batch

# MLflow's scoring server answers 400 with one of these for input it cannot use (schema,
# format); any other 4xx means the server, not the request, is wrong.
VALIDATION_ERROR_CODES = frozenset({"BAD_REQUEST", "INVALID_PARAMETER_VALUE", "MALFORMED_REQUEST"})


class RemoteUnavailable(Exception):
    """The remote backend did not answer usefully (down, timing out, 5xx, breaker open)."""


class RemoteRejected(Exception):
    """The remote backend refused the input (a validation error): the client's problem, not the backend's."""

    def __init__(self, status: int, body: str) -> None:
        super().__init__(f"remote backend answered {status}: {body[:300]}")
        self.status = status
        self.body = body


class CircuitBreaker:
    """Closed -> open after N consecutive failures -> half-open after ``cooldown`` seconds."""

    def __init__(self, failure_threshold: int = 5, cooldown: float = 10.0) -> None:
        self.failure_threshold = failure_threshold
        self.cooldown = cooldown
        self._failures = 0
        self._opened_at: float | None = None
        self._lock = threading.Lock()

    @property
    def state(self) -> str:
        if self._opened_at is None:
            return "closed"
        return "half-open" if time.monotonic() - self._opened_at >= self.cooldown else "open"

    def allow(self) -> bool:
        with self._lock:
            if self._opened_at is None:
                return True
            if time.monotonic() - self._opened_at >= self.cooldown:
                self._opened_at = time.monotonic()  # one trial per cooldown window
                return True
            return False

    def success(self) -> None:
        with self._lock:
            self._failures = 0
            self._opened_at = None

    def failure(self) -> None:
        with self._lock:
            self._failures += 1
            if self._failures >= self.failure_threshold:
                self._opened_at = time.monotonic()


class RemoteBackend:
    """Client of one remote scoring server's ``/invocations``."""

    def __init__(
        self,
        url: str,
        *,
        timeout: float = 2.0,
        connect_timeout: float = 0.5,
        retries: int = 1,
        failure_threshold: int = 5,
        cooldown: float = 10.0,
    ) -> None:
        self.url = url.rstrip("/")
        self.invocations = self.url if self.url.endswith("/invocations") else self.url + "/invocations"
        self.timeout = (connect_timeout, timeout)
        self.retries = retries
        self.breaker = CircuitBreaker(failure_threshold, cooldown)
        self._local = threading.local()

    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
        return session

    def predict(self, batch: Batch) -> list[Any]:
        refusal = remote_url_refusal(self.invocations)
        if refusal:  # the allowlist was narrowed after this variant was saved
            raise RemoteUnavailable(f"not calling {self.url}: {refusal}")
        if not self.breaker.allow():
            raise RemoteUnavailable(f"circuit open for {self.url}")
        body = json.dumps(
            {
                "dataframe_split": {"columns": batch.columns, "data": batch.rows},
                "params": batch.params or None,
            }
            if batch.params
            else {"dataframe_split": {"columns": batch.columns, "data": batch.rows}}
        )
        last = ""
        for _ in range(1 + self.retries):
            try:
                response = self._session().post(
                    self.invocations,
                    data=body,
                    headers={"Content-Type": "application/json"},
                    timeout=self.timeout,
                    allow_redirects=False,
                )
            except requests.RequestException as exc:
                last = f"{type(exc).__name__}: {exc}"
                continue
            if response.status_code >= 500:
                last = f"HTTP {response.status_code}"
                continue
            if response.status_code >= 300 and not _is_validation_error(response):
                last = f"HTTP {response.status_code}" + (
                    " (redirects are not followed)" if response.status_code < 400 else ""
                )
                break  # the same answer again on a retry: count it and fall back now
            if response.status_code >= 400:
                self.breaker.success()  # it answered; the input was wrong
                raise RemoteRejected(response.status_code, response.text)
            try:
                predictions = response.json()["predictions"]
            except (ValueError, KeyError, TypeError):
                last = "answer without predictions"
                continue
            self.breaker.success()
            return predictions if isinstance(predictions, list) else [predictions]
        self.breaker.failure()
        raise RemoteUnavailable(f"{self.url}: {last}")


def _is_validation_error(response: requests.Response) -> bool:
    """A 400 whose JSON body carries one of MLflow's input error codes."""
    if response.status_code != 400:
        return False
    try:
        body = response.json()
    except ValueError:
        return False
    return isinstance(body, dict) and body.get("error_code") in VALIDATION_ERROR_CODES


_BACKENDS: dict[str, RemoteBackend] = {}
_LOCK = threading.Lock()


def backend_for(url: str, **options: Any) -> RemoteBackend:
    """One backend (and so one breaker) per URL per worker, kept across table refreshes."""
    with _LOCK:
        backend = _BACKENDS.get(url)
        if backend is None:
            backend = _BACKENDS[url] = RemoteBackend(url, **options)
        return backend
