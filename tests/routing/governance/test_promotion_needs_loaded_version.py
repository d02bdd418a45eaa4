"""A version that no live worker has loaded, or that a live worker failed to load, cannot be promoted.

Issue 10, item 8 (the worker-status part): a challenger that never loaded could be promoted, and
then the endpoint answered 503 on every pod. Workers report what they loaded and what failed (one
``WorkerStatus`` row each, with a heartbeat); promotion reads the live rows.

No live worker at all (tests, a management command, a control plane whose web pods are all down)
is not a refusal: the promotion goes ahead and its audit row says the load was not verified.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from registry.models import AuditEvent
from routing.governance.errors import GovernanceError
from routing.governance.promotion import endpoint_promote, promotion_approve, promotion_request
from routing.governance.services import challenger_start, endpoint_create
from routing.models import Variant, WorkerStatus

pytestmark = pytest.mark.django_db


@pytest.fixture
def endpoint(fresh_model, scientist):
    endpoint_create(
        actor="system", name="ep", model_name=fresh_model.name, champion_version=1, reason="launch"
    )
    challenger_start(actor=scientist, endpoint_name="ep", version=2, percent=20, reason="try xgboost")
    return fresh_model.name


def _worker(
    host: str, model: str, loaded=(), failed: dict[int, str] | None = None, age: float = 0
) -> WorkerStatus:
    now = timezone.now()
    return WorkerStatus.objects.create(
        host=host,
        pid=4242,
        started_at=now - timedelta(seconds=age + 60),
        heartbeat_at=now - timedelta(seconds=age),
        loaded=[{"model": model, "version": v} for v in loaded],
        failures=[{"model": model, "version": v, "error": e} for v, e in (failed or {}).items()],
    )


def _champion() -> int:
    return Variant.objects.get(endpoint__name="ep", role="champion").model_version.version


def test_a_version_a_live_worker_failed_to_load_is_refused_naming_the_worker_and_why(endpoint, scientist):
    _worker("web-a", endpoint, loaded=[1, 2])
    _worker("web-b", endpoint, loaded=[1], failed={2: "ModuleNotFoundError: No module named 'xgboost'"})
    with pytest.raises(GovernanceError) as err:
        endpoint_promote(actor=scientist, endpoint_name="ep", variant_name="v2", reason="better")
    assert err.value.code == "version_not_loaded"
    assert "web-b pid 4242" in err.value.message and "No module named 'xgboost'" in err.value.message
    assert _champion() == 1


def test_a_version_no_live_worker_has_loaded_is_refused(endpoint, scientist):
    _worker("web-a", endpoint, loaded=[1])
    with pytest.raises(GovernanceError) as err:
        endpoint_promote(actor=scientist, endpoint_name="ep", variant_name="v2", reason="better")
    assert err.value.code == "version_not_loaded" and "no live worker has loaded" in err.value.message
    assert _champion() == 1


def test_a_version_the_live_workers_loaded_is_promoted_and_the_audit_names_them(endpoint, scientist):
    _worker("web-a", endpoint, loaded=[1, 2])
    _worker("web-b", endpoint, loaded=[1, 2])
    _worker("web-c", endpoint, failed={2: "stale news"}, age=3600)  # gone an hour ago: ignored
    endpoint_promote(actor=scientist, endpoint_name="ep", variant_name="v2", reason="better")
    assert _champion() == 2
    workers = AuditEvent.objects.get(action="routing.endpoint_promoted").after["workers"]
    assert workers == {"verified": True, "loaded_on": ["web-a pid 4242", "web-b pid 4242"]}


def test_with_no_live_worker_the_promotion_goes_ahead_unverified_and_says_so(endpoint, scientist):
    endpoint_promote(actor=scientist, endpoint_name="ep", variant_name="v2", reason="better")
    assert _champion() == 2
    workers = AuditEvent.objects.get(action="routing.endpoint_promoted").after["workers"]
    assert workers["verified"] is False and "no live worker" in workers["note"]


def test_a_four_eyes_request_and_its_approval_are_both_checked(endpoint, scientist, approver, settings):
    settings.REQUIRE_PROMOTION_APPROVAL = True
    broken = _worker("web-a", endpoint, loaded=[1], failed={2: "OSError: disk full"})
    with pytest.raises(GovernanceError) as err:
        promotion_request(actor=scientist, endpoint_name="ep", variant_name="v2", reason="better")
    assert "disk full" in err.value.message
    broken.delete()
    _worker("web-a", endpoint, loaded=[1, 2])
    request = promotion_request(actor=scientist, endpoint_name="ep", variant_name="v2", reason="better")
    WorkerStatus.objects.all().update(
        failures=[{"model": endpoint, "version": 2, "error": "OSError: disk full"}]
    )
    with pytest.raises(GovernanceError):
        promotion_approve(actor=approver, request_id=request.pk)
    assert _champion() == 1
