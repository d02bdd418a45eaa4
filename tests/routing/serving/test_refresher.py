"""The refresher asks one cheap question per period and rebuilds only when the answer changed.

Issue 10, item 4: it ran N+3 queries per second per worker (one Variant query per endpoint, plus
endpoints and tokens) and rebuilt everything whether or not anything had changed. Any routing or
token change now bumps a generation counter in the same transaction (database triggers, so bulk
updates, the admin and the shell count too); the refresher reads that one row.
"""

from __future__ import annotations

import threading

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from routing.governance.tokens import service_token_revoke
from routing.models import Endpoint, ServiceToken, Variant

pytestmark = pytest.mark.django_db

CHAMPION_ONLY = [{"name": "champ", "role": "champion", "version": 1, "weight": 100}]


def _generation() -> int:
    from routing.models import RoutingGeneration  # imported here: the counting tests run without it

    return RoutingGeneration.current()


def _queries(fn) -> int:
    with CaptureQueriesContext(connection) as captured:
        fn()
    return len(captured.captured_queries)


def _endpoints(serving, n: int) -> None:
    for i in range(n):
        serving.endpoint(f"ep-{i}", CHAMPION_ONLY)
    serving.token("svc-a")
    serving.token("svc-b", endpoints=["ep-0"])


def test_an_unchanged_table_costs_one_query_per_refresh_and_is_not_rebuilt(serving):
    _endpoints(serving, 3)
    first = serving.refresh()
    count = _queries(serving.refresh)
    print(f"queries per unchanged refresh, 3 endpoints: {count}")
    assert count == 1
    assert serving.refresh() is first  # the same snapshot: nothing rebuilt


def test_a_rebuild_costs_the_same_queries_for_one_endpoint_or_five(serving):
    def rebuild_cost() -> int:
        Variant.objects.filter(name="champ").update(weight=50)  # a bulk update: no signal, a change
        return _queries(serving.refresh)

    serving.endpoint("ep-0", CHAMPION_ONLY)
    serving.token("svc-a")
    serving.refresh()
    one = rebuild_cost()
    for i in range(1, 5):
        serving.endpoint(f"ep-{i}", CHAMPION_ONLY)
    serving.refresh()
    five = rebuild_cost()
    print(f"queries per rebuild: 1 endpoint {one}, 5 endpoints {five}")
    assert one == five <= 4


def test_every_routing_and_token_change_bumps_the_generation(serving):
    serving.endpoint("gen", CHAMPION_ONLY)
    seen = [_generation()]

    def changed() -> bool:
        seen.append(_generation())
        return seen[-1] != seen[-2]

    Variant.objects.filter(endpoint__name="gen").update(weight=7)
    assert changed()
    Endpoint.objects.filter(name="gen").update(is_active=False)
    assert changed()
    serving.token("svc")
    assert changed()
    token = ServiceToken.objects.get(name="svc")
    token.endpoints.set([Endpoint.objects.get(name="gen")])
    assert changed()
    service_token_revoke(actor="system", name="svc")
    assert changed()
    Variant.objects.filter(endpoint__name="gen").delete()
    assert changed()
    Endpoint.objects.all().update(description="")  # still a write to a routing table
    assert changed()


def test_a_rolled_back_change_leaves_the_generation_alone(serving):
    serving.endpoint("gen", CHAMPION_ONLY)
    before = _generation()
    with pytest.raises(RuntimeError), transaction.atomic():
        Variant.objects.filter(endpoint__name="gen").update(weight=9)
        raise RuntimeError("rolled back")
    assert _generation() == before


@pytest.mark.django_db(transaction=True)
def test_the_bump_is_seen_by_other_connections_only_when_the_change_commits(serving):
    serving.endpoint("gen", CHAMPION_ONLY)
    before = _generation()
    seen: list[int] = []

    def other_connection() -> None:
        seen.append(_generation())
        connection.close()

    with transaction.atomic():
        Variant.objects.filter(endpoint__name="gen").update(weight=3)
        reader = threading.Thread(target=other_connection)
        reader.start()
        reader.join()
    assert seen == [before]  # not yet committed
    reader = threading.Thread(target=other_connection)
    reader.start()
    reader.join()
    assert seen[-1] != before


def test_a_weight_change_is_served_after_the_next_refresh_without_a_rebuild_in_between(serving):
    from tests.routing.helpers import breast_rows

    serving.endpoint(
        "swap",
        [
            {"name": "champ", "role": "champion", "version": 1, "weight": 100},
            {"name": "chall", "role": "challenger", "version": 2, "weight": 0},
        ],
    )
    token = serving.token()
    built = serving.refresh()
    assert serving.refresh() is built
    Variant.objects.filter(name="champ").update(weight=0)
    Variant.objects.filter(name="chall").update(weight=100)
    rebuilt = serving.refresh()
    assert rebuilt is not built
    columns, rows = breast_rows(1)
    body = {"dataframe_split": {"columns": columns, "data": rows}}
    assert {serving.post("/predict/swap", body, token)["X-Variant"] for _ in range(5)} == {"chall"}
