"""Is this worker ready to serve? Read from the current routing table, never by rebuilding it.

``/readyz`` (``controlplane.health``) asks this through ``READINESS_CHECKS``. The answer costs no
query, no model load and no lock, so a slow load or a database outage never slows the probe.

Ready when all of these hold:

- the worker has a routing table (it builds one before it accepts requests);
- the refresher confirmed that table against the database within
  ``READINESS_MAX_TABLE_AGE_SECONDS``: through a shorter database outage the pod stays ready and
  serves from the snapshot, because /predict never touches the database;
- at least one active endpoint can serve (its champion is loaded, or remote), or there is no
  active endpoint. One endpoint whose champion cannot load does not take the pod out for all the
  others: it is listed with its problem, ``controlplane_model_loaded`` is 0 for it and the
  ``ControlplaneChampionNotLoaded`` alert fires. Taking every pod out would not help it: they
  all share the same registry.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings

from routing.serving.table import TABLE, EndpointRoute


def _endpoint_problems(route: EndpointRoute) -> list[str]:
    champion = route.champion
    problems = []
    if champion is None:
        problems.append("no champion")
    elif not champion.can_serve:
        problems.append(
            f"champion {champion.name} ({champion.model_name} v{champion.model_version}) not loaded: "
            f"{champion.load_error or 'loading'}"
        )
    for v in route.by_name.values():
        if v is not champion and not v.can_serve:
            problems.append(
                f"{v.role} {v.name} ({v.model_name} v{v.model_version}) not loaded: {v.load_error or 'loading'}"
            )
    return problems


def readiness() -> dict[str, Any]:
    """``{"name", "ready", "problems", "table", "endpoints"}``; details are for staff only."""
    snapshot, age, max_age = TABLE.snapshot, TABLE.confirmed_age(), settings.READINESS_MAX_TABLE_AGE_SECONDS
    if snapshot is None or age is None:
        why = f": {TABLE.last_error}" if TABLE.last_error else ""
        return {
            "name": "serving",
            "ready": False,
            "problems": [f"routing table not built yet{why}"],
            "table": {"built": False, "last_error": TABLE.last_error},
        }
    endpoints = {
        route.name: {
            "active": route.is_active,
            "can_serve": route.is_active and route.champion is not None and route.champion.can_serve,
            "problems": _endpoint_problems(route) if route.is_active else [],
        }
        for route in snapshot.endpoints.values()
    }
    problems = []
    fresh = age <= max_age
    if not fresh:
        problems.append(
            f"routing table older than {max_age:g} s: last confirmed against the database {age:.0f} s ago"
            + (f" ({TABLE.last_error})" if TABLE.last_error else "")
        )
    active = [e for e in endpoints.values() if e["active"]]
    serving = [e for e in active if e["can_serve"]]
    if active and not serving:
        problems.append("no active endpoint can serve")
    problems += [f"endpoint {name}: {p}" for name, e in endpoints.items() for p in e["problems"]]
    return {
        "name": "serving",
        "ready": fresh and (not active or bool(serving)),
        "problems": problems,
        "table": {
            "built": True,
            "age_seconds": round(age, 3),
            "max_age_seconds": max_age,
            "generation": snapshot.generation,
            "last_error": TABLE.last_error,
        },
        "endpoints": endpoints,
    }
