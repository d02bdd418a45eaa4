"""Races and outages: the governance changes stay whole when admins collide or MLflow is down."""

from __future__ import annotations

import io
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.core.management import call_command
from django.db import connection, connections
from rest_framework.test import APIClient

from registry.mlflow_client import MlflowUnavailable
from registry.models import AuditEvent, RegisteredModel
from registry.services import registry_sync
from routing.governance.outbox import alias_pushes_apply
from routing.governance.services import challenger_start, endpoint_create, traffic_split_set
from routing.models import AliasPush, Variant
from tests.conftest import clone_version, load_script


def _roles(endpoint_name: str) -> dict[str, tuple[str, int]]:
    return {v.name: (v.role, v.weight) for v in Variant.objects.filter(endpoint__name=endpoint_name)}


@pytest.fixture
def writers_can_wait(tmp_path: Path) -> Iterator[None]:
    """Let concurrent writers queue on SQLite as they do in production.

    The test database is in-memory with a shared cache, where a second writer gets "database
    table is locked" at once instead of waiting. So, on SQLite only, the data is copied to a file
    (WAL, busy timeout and BEGIN IMMEDIATE from settings, like production) for the test's
    duration. PostgreSQL needs nothing: the endpoint's row lock is what is exercised there.
    """
    if connection.vendor != "sqlite" or not connection.is_in_memory_db():
        yield
        return
    settings_dict = connections.settings["default"]
    memory_name = settings_dict["NAME"]
    keeper = sqlite3.connect(memory_name, uri=True)  # closing the last handle would drop the memory DB
    target = sqlite3.connect(tmp_path / "race.sqlite3")
    keeper.backup(target)
    target.close()
    settings_dict["NAME"] = str(tmp_path / "race.sqlite3")
    connection.close()  # only now: Django ignores close() on an in-memory database
    try:
        yield
    finally:
        connection.close()
        settings_dict["NAME"] = memory_name
        connection.ensure_connection()  # reopen before the keeper lets go, or the memory DB is gone
        keeper.close()


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_split_changes_end_consistent_with_two_audit_rows(fresh_model, scientist, request):
    endpoint_create(actor="system", name="race", model_name=fresh_model.name, champion_version=1, reason="r")
    challenger_start(actor="system", endpoint_name="race", version=2, percent=20, reason="r")
    request.getfixturevalue("writers_can_wait")
    splits = [{"v1": 70, "v2": 30}, {"v1": 40, "v2": 60}]
    barrier = threading.Barrier(len(splits))
    errors: list[BaseException] = []

    def change(weights: dict[str, int]) -> None:
        try:
            barrier.wait(timeout=10)
            traffic_split_set(actor=scientist, endpoint_name="race", weights=weights, reason=f"set {weights}")
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()  # each thread has its own connection

    threads = [threading.Thread(target=change, args=(w,)) for w in splits]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)

    assert errors == []
    events = list(AuditEvent.objects.filter(action="routing.traffic_split_set").order_by("id"))
    assert len(events) == 2
    # Serialised by the endpoint lock: the second change saw the first one's result as "before".
    assert events[1].before == events[0].after
    final = {n: w for n, (_, w) in _roles("race").items()}
    assert final == {n: v["weight"] for n, v in events[1].after["variants"].items()}
    assert final in splits
    assert Variant.objects.filter(endpoint__name="race", role="champion").count() == 1


@pytest.mark.slow
@pytest.mark.django_db
def test_a_promotion_through_the_api_with_mlflow_down_commits_and_its_push_waits_for_mlflow(
    mlflow_server_factory, use_mlflow, scientist
):
    server = mlflow_server_factory()
    use_mlflow(server)
    name = "outage-model"
    load_script("train_sklearn").train_and_register(name)
    client = server.client()
    clone_version(client, name, client.get_model_version(name, "1"))
    registry_sync(model_name=name)
    endpoint_create(actor="system", name="out", model_name=name, champion_version=1, reason="r")
    challenger_start(actor=scientist, endpoint_name="out", version=2, percent=20, reason="r")
    alias_pushes_apply(model_name=name)

    server.stop()
    api = APIClient()
    api.force_login(scientist)
    response = api.post("/api/v1/endpoints/out/promote/", {"variant": "v2", "reason": "ship"}, format="json")
    with pytest.raises(MlflowUnavailable):
        alias_pushes_apply(model_name=name)  # what a worker does now: fails, and says so on the row

    assert response.status_code == 200, response.content
    assert _roles("out") == {"v1": ("previous_champion", 0), "v2": ("champion", 100)}
    assert AuditEvent.objects.filter(action="routing.endpoint_promoted").count() == 1
    push = AliasPush.objects.filter(registered_model__name=name).latest("id")
    assert (push.status, push.attempts, push.aliases) == ("pending", 1, {"champion": 2, "challenger": None})
    assert server.url in push.last_error
    assert RegisteredModel.objects.get(name=name).aliases == {"champion": 1, "challenger": 2}  # not yet

    server.start()
    assert alias_pushes_apply(model_name=name) == 1

    assert {a: int(v) for a, v in client.get_registered_model(name).aliases.items()} == {"champion": 2}
    assert RegisteredModel.objects.get(name=name).aliases == {"champion": 2}
    assert AliasPush.objects.get(pk=push.pk).status == "applied"
    assert registry_sync(model_name=name).alias_changes == []


@pytest.mark.django_db
def test_reconcile_puts_back_aliases_moved_outside_the_control_plane(fresh_model, mlflow_server):
    endpoint_create(actor="system", name="rec", model_name=fresh_model.name, champion_version=1, reason="r")
    challenger_start(actor="system", endpoint_name="rec", version=2, percent=20, reason="r")
    client = mlflow_server.client()
    client.set_registered_model_alias(fresh_model.name, "champion", "3")
    client.delete_registered_model_alias(fresh_model.name, "challenger")

    out = io.StringIO()
    call_command("reconcile_aliases", "--endpoint", "rec", stdout=out)

    aliases = {a: int(v) for a, v in client.get_registered_model(fresh_model.name).aliases.items()}
    assert aliases == {"champion": 1, "challenger": 2}
    assert "rec: champion=1, challenger=2 applied" in out.getvalue()
    assert not AliasPush.objects.filter(registered_model__name=fresh_model.name, status__in=AliasPush.OPEN)
    assert registry_sync(model_name=fresh_model.name).alias_changes == []
