"""The alias outbox on real workers: governance changes commit without MLflow, a worker pushes
the aliases after commit, and a promotion made while MLflow is stopped reaches it on return."""

from __future__ import annotations

import time

import pytest
from django.test import Client

from registry.models import RegisteredModel
from registry.services import registry_sync
from routing.governance.promotion import endpoint_promote
from routing.governance.services import challenger_start, endpoint_create
from routing.models import AliasPush, Variant
from tests.celery_workers import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def _aliases(mlflow_server, name: str) -> dict[str, int]:
    return {a: int(v) for a, v in mlflow_server.client().get_registered_model(name).aliases.items()}


def _open(name: str) -> list[AliasPush]:
    return list(AliasPush.objects.filter(registered_model__name=name, status__in=AliasPush.OPEN))


def test_a_worker_pushes_the_aliases_after_commit(fresh_model, scientist, mlflow_server, celery_workers):
    endpoint_create(actor="system", name="obx", model_name=fresh_model.name, champion_version=1, reason="r")
    challenger_start(actor=scientist, endpoint_name="obx", version=2, percent=20, reason="try")

    wait_until(lambda: not _open(fresh_model.name), 60, "the worker applies the pushes")
    assert _aliases(mlflow_server, fresh_model.name) == {"champion": 1, "challenger": 2}
    assert RegisteredModel.objects.get(name=fresh_model.name).aliases == {"champion": 1, "challenger": 2}
    tags = mlflow_server.client().get_model_version(fresh_model.name, "2").tags
    assert tags["controlplane.role_changed_by"] == "dana"
    assert [p.status for p in AliasPush.objects.filter(registered_model__name=fresh_model.name)] == [
        "applied",
        "applied",
    ]


def test_a_promotion_while_mlflow_is_stopped_succeeds_and_reaches_mlflow_when_it_returns(
    fresh_model, scientist, admin_user_all, mlflow_server, celery_workers
):
    name = fresh_model.name
    endpoint_create(actor="system", name="down", model_name=name, champion_version=1, reason="r")
    challenger_start(actor=scientist, endpoint_name="down", version=2, percent=20, reason="try")
    wait_until(lambda: not _open(name), 60, "the first pushes are applied")

    mlflow_server.stop()
    try:
        started = time.monotonic()
        endpoint_promote(actor=scientist, endpoint_name="down", variant_name="v2", reason="ship it")
        took = time.monotonic() - started
        roles = {v.name: v.role for v in Variant.objects.filter(endpoint__name="down")}
        # A worker tried, failed, and keeps the push pending with the error for the admin page.
        tried = wait_until(
            lambda: [p for p in _open(name) if p.attempts >= 1], 90, "a failed attempt is recorded"
        )
        page = Client()
        page.force_login(admin_user_all)
        endpoint_id = Variant.objects.get(endpoint__name="down", name="v2").endpoint_id
        html = page.get(f"/admin/routing/endpoint/{endpoint_id}/change/").content.decode()
    finally:
        mlflow_server.start()

    assert took < 2, f"the promotion waited {took:.1f} s on MLflow"
    assert roles == {"v1": "previous_champion", "v2": "champion"}
    assert tried[0].aliases == {"champion": 2, "challenger": None}
    assert mlflow_server.url in tried[0].last_error
    assert 'id="alias-pushes"' in html and "champion=2" in html and "Pending" in html

    wait_until(lambda: not _open(name), 180, "the push is applied once MLflow is back")
    assert _aliases(mlflow_server, name) == {"champion": 2}
    assert (
        mlflow_server.client().get_model_version(name, "2").tags["controlplane.promotion_reason"] == "ship it"
    )
    assert RegisteredModel.objects.get(name=name).aliases == {"champion": 2}
    assert registry_sync(model_name=name).alias_changes == []


def test_beats_reconcile_applies_a_push_whose_message_was_lost(fresh_model, mlflow_server, celery_workers):
    from routing.tasks import reconcile_aliases

    endpoint_create(actor="system", name="lost", model_name=fresh_model.name, champion_version=1, reason="r")
    wait_until(lambda: not _open(fresh_model.name), 60, "the first push is applied")
    # A push committed while the broker was unreachable: a row, and no message.
    AliasPush.objects.create(
        registered_model=RegisteredModel.objects.get(name=fresh_model.name),
        action="lost message",
        aliases={"champion": 1, "challenger": 3},
    )

    reconcile_aliases.delay()

    wait_until(lambda: not _open(fresh_model.name), 60, "the reconcile applies the lost push")
    assert _aliases(mlflow_server, fresh_model.name) == {"champion": 1, "challenger": 3}
