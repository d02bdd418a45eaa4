"""The control API calls (``/api/v1/``), made as a user with a reason; each maps to one governed action.

Every change needs ``reason=``: the server records it in the audit trail and in MLflow's version
tags, and refuses a blank one. Permissions are the user's (the server's role groups).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from controlplane_client.errors import ControlPlaneError
from controlplane_client.transport import Http

WEIGHTED_ROLES = ("champion", "challenger")


def weights_with_share(weights: Mapping[str, int], variant: str, percent: int) -> dict[str, int]:
    """The split that gives ``variant`` ``percent`` % and keeps the others' proportions (sums to 100).

    Integer weights by largest remainder; when the others all weigh 0 the first of them takes the rest.
    """
    if variant not in weights:
        raise ValueError(f"{variant!r} is not a champion or challenger here: {', '.join(sorted(weights))}.")
    if isinstance(percent, bool) or not isinstance(percent, int) or not 0 <= percent <= 100:
        raise ValueError(f"percent must be a whole number from 0 to 100, not {percent!r}.")
    others = {name: w for name, w in weights.items() if name != variant}
    rest, total = 100 - percent, sum(others.values())
    if not others:
        if percent != 100:
            raise ValueError(f"{variant!r} is the only champion or challenger; it takes all traffic.")
        return {variant: 100}
    if total == 0:
        first = next(iter(others))
        return {variant: percent, **{n: (rest if n == first else 0) for n in others}}
    exact = {n: w * rest / total for n, w in others.items()}
    scaled = {n: int(x) for n, x in exact.items()}
    for n in sorted(exact, key=lambda n: exact[n] - scaled[n], reverse=True)[: rest - sum(scaled.values())]:
        scaled[n] += 1
    return {variant: percent, **scaled}


def _ep(name: str) -> str:
    if not name or not isinstance(name, str):
        raise ValueError(f"An endpoint name is required, not {name!r}.")
    return f"endpoints/{quote(name, safe='')}/"


class GovernanceCalls:
    """Reads and governed changes of endpoints, variants and promotions; mixed into ``ControlPlane``."""

    http: Http

    # --- reads ---------------------------------------------------------------------------------

    def endpoints(self) -> list[dict[str, Any]]:
        """Every endpoint with its serving variants and their traffic shares."""
        return list(self.http.api_pages("endpoints/"))

    def endpoint(self, name: str) -> dict[str, Any]:
        """One endpoint with its serving variants (champion, challengers, shadows) and shares."""
        return self.http.api("GET", _ep(name))

    def variants(self, endpoint: str | None = None) -> list[dict[str, Any]]:
        """Every variant, retired ones included, optionally of one endpoint."""
        return list(self.http.api_pages("variants/", endpoint=endpoint))

    def versions(self, model: str | None = None) -> list[dict[str, Any]]:
        """The control plane's mirror of MLflow model versions (aliases, status, metrics)."""
        return list(self.http.api_pages("versions/", model=model))

    def audit_events(
        self, *, endpoint: str | None = None, action: str | None = None, limit: int | None = 100
    ) -> list[dict[str, Any]]:
        """The audit trail, newest first: who did what, before and after, and why."""
        return list(self.http.api_pages("audit-events/", limit=limit, endpoint=endpoint, action=action))

    # --- changes -------------------------------------------------------------------------------

    def create_endpoint(
        self, name: str, *, model_name: str, champion_version: int, reason: str, **options: Any
    ) -> dict[str, Any]:
        """A new endpoint serving ``champion_version`` with all traffic (options: description, gate_metric, gate_mode)."""
        body = {
            "name": name,
            "model_name": model_name,
            "champion_version": champion_version,
            "reason": reason,
        }
        return self.http.api("POST", "endpoints/", {**body, **options})

    def start_challenger(
        self, endpoint: str, *, version: int, percent: int, reason: str, **options: Any
    ) -> dict[str, Any]:
        """Start ``version`` as a challenger taking ``percent`` % (options: name, model_name, backend, remote_url)."""
        body = {"version": version, "percent": percent, "reason": reason, **options}
        return self.http.api("POST", _ep(endpoint) + "challengers/", body)

    def set_split(self, endpoint: str, weights: Mapping[str, int], *, reason: str) -> dict[str, Any]:
        """Set every champion's and challenger's weight at once (variant name -> weight)."""
        return self.http.api("POST", _ep(endpoint) + "split/", {"weights": dict(weights), "reason": reason})

    def set_share(self, endpoint: str, variant: str, percent: int, *, reason: str) -> dict[str, Any]:
        """Give one champion or challenger ``percent`` % of live traffic; the others keep their proportions.

        Reads the current weights, then sets the whole split: a change someone else makes in
        between is overwritten (both are in the audit trail).
        """
        current = self.endpoint(endpoint)
        weights = {v["name"]: int(v["weight"]) for v in current["variants"] if v["role"] in WEIGHTED_ROLES}
        try:
            split = weights_with_share(weights, variant, percent)
        except ValueError as exc:
            raise ControlPlaneError(0, "invalid", f"Endpoint {endpoint!r}: {exc}") from None
        return self.set_split(endpoint, split, reason=reason)

    def set_shadow(
        self, endpoint: str, *, version: int, mirror_percent: int, reason: str, **options: Any
    ) -> dict[str, Any]:
        """Mirror ``mirror_percent`` % of requests to ``version`` (answers logged, never returned)."""
        body = {"version": version, "mirror_percent": mirror_percent, "reason": reason, **options}
        return self.http.api("POST", _ep(endpoint) + "shadows/", body)

    def remove_shadow(self, endpoint: str, variant: str, *, reason: str) -> dict[str, Any]:
        """Stop mirroring to a shadow."""
        return self.http.api(
            "POST", _ep(endpoint) + "shadows/remove/", {"variant": variant, "reason": reason}
        )

    def retire_challenger(self, endpoint: str, variant: str, *, reason: str) -> dict[str, Any]:
        """Stop a challenger; the champion takes its traffic back."""
        return self.http.api("POST", _ep(endpoint) + "retire/", {"variant": variant, "reason": reason})

    def promote(
        self, endpoint: str, variant: str, *, reason: str, gate_override_reason: str = ""
    ) -> dict[str, Any]:
        """Make a challenger the champion (refused when the server requires four-eyes approval)."""
        body = {"variant": variant, "reason": reason, "gate_override_reason": gate_override_reason}
        return self.http.api("POST", _ep(endpoint) + "promote/", body)

    def request_promotion(
        self, endpoint: str, variant: str, *, reason: str, gate_override_reason: str = ""
    ) -> dict[str, Any]:
        """Ask for a challenger's promotion; a different user approves it."""
        body = {"variant": variant, "reason": reason, "gate_override_reason": gate_override_reason}
        return self.http.api("POST", _ep(endpoint) + "promotion-requests/", body)

    def approve_promotion(self, request_id: int, *, reason: str = "") -> dict[str, Any]:
        """Approve someone else's promotion request; the promotion is applied at once."""
        return self.http.api("POST", f"promotion-requests/{int(request_id)}/approve/", {"reason": reason})

    def reject_promotion(self, request_id: int, *, reason: str) -> dict[str, Any]:
        """Turn a promotion request down."""
        return self.http.api("POST", f"promotion-requests/{int(request_id)}/reject/", {"reason": reason})

    def rollback(self, endpoint: str, *, reason: str) -> dict[str, Any]:
        """Put the previous champion back in one step."""
        return self.http.api("POST", _ep(endpoint) + "rollback/", {"reason": reason})

    def pause(self, endpoint: str, *, reason: str) -> dict[str, Any]:
        """Stop serving the endpoint (/predict answers 503) until it is resumed."""
        return self.http.api("POST", _ep(endpoint) + "pause/", {"reason": reason})

    def resume(self, endpoint: str, *, reason: str) -> dict[str, Any]:
        """Serve again after a pause."""
        return self.http.api("POST", _ep(endpoint) + "resume/", {"reason": reason})
