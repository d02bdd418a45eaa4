"""Sticky, monotone weighted routing, unit-tested on the table itself (no HTTP, no database)."""

from __future__ import annotations

import math
import random
from collections import Counter

from routing.serving.table import VariantRoute, make_route, pick_random, pick_sticky


def _route(weights: dict[str, int], endpoint: str = "ep") -> object:
    variants = [
        VariantRoute(
            name=n,
            role="champion" if i == 0 else "challenger",
            weight=w,
            mirror_percent=0,
            model_name="m",
            model_version=i + 1,
            schema=None,
        )
        for i, (n, w) in enumerate(weights.items())
    ]
    return make_route(endpoint, True, variants)


KEYS = [f"user-{i}" for i in range(10_000)]


def _assign(route) -> dict[str, str]:
    return {k: pick_sticky(route, k).name for k in KEYS}


def test_it_keeps_a_unit_on_its_variant_when_weights_do_not_change():
    # Two tables built independently (two workers, or one after a restart) agree on every key.
    first = _assign(_route({"champ": 90, "chall": 10}))
    second = _assign(_route({"chall": 10, "champ": 90}))
    assert first == second
    assert {pick_sticky(_route({"champ": 90, "chall": 10}), "user-7").name for _ in range(50)} == {
        first["user-7"]
    }


def test_raising_a_challengers_weight_only_moves_units_towards_it():
    before = _assign(_route({"champ": 80, "a": 10, "b": 10}))
    after = _assign(_route({"champ": 80, "a": 30, "b": 10}))
    moved = [k for k in KEYS if before[k] != after[k]]
    assert moved  # something did move
    assert all(after[k] == "a" for k in moved)
    assert all(before[k] != "a" or after[k] == "a" for k in KEYS)  # nobody left a


def test_a_challenger_at_zero_gets_no_unit_and_a_new_one_only_takes_units():
    before = _assign(_route({"champ": 100, "a": 0}))
    assert set(before.values()) == {"champ"}
    after = _assign(_route({"champ": 100, "a": 5}))
    assert all(after[k] in ("a", before[k]) for k in KEYS)


def test_the_split_of_10000_keyed_requests_is_within_tolerance_of_the_weights():
    weights = {"champ": 90, "a": 7, "b": 3}
    counts = Counter(_assign(_route(weights)).values())
    total = sum(weights.values())
    for name, weight in weights.items():
        p = weight / total
        sigma = math.sqrt(len(KEYS) * p * (1 - p))
        assert abs(counts[name] - len(KEYS) * p) < 4 * sigma, (name, counts)


def test_the_same_key_on_another_endpoint_is_assigned_independently():
    a = _assign(_route({"champ": 50, "chall": 50}, endpoint="one"))
    b = _assign(_route({"champ": 50, "chall": 50}, endpoint="two"))
    agree = sum(a[k] == b[k] for k in KEYS) / len(KEYS)
    assert 0.45 < agree < 0.55


def test_without_a_key_requests_are_drawn_by_weight():
    route = _route({"champ": 75, "chall": 25})
    rng = random.Random(1)
    counts = Counter(pick_random(route, rng).name for _ in range(10_000))
    sigma = math.sqrt(10_000 * 0.25 * 0.75)
    assert abs(counts["chall"] - 2500) < 4 * sigma
    assert pick_random(_route({"champ": 0})) is None
