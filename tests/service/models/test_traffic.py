"""The traffic split's pure routing: weighted draws, sticky keys, unavailable arms."""

from __future__ import annotations

import random
from collections import Counter

from service.models.traffic import arm_weights, pick, sticky_header


def test_labels_resolve_and_weights_of_one_version_add_up() -> None:
    weights = arm_weights({"stable": 3, "2": 1, "canary": 1}, {"stable": 1, "canary": 2})
    assert weights == {1: 3.0, 2: 2.0}


def test_a_keyless_draw_follows_the_weights() -> None:
    rng = random.Random(7)
    counts = Counter(pick({1: 75, 2: 25}, [1, 2], None, rng) for _ in range(20_000))
    assert abs(counts[2] / 20_000 - 0.25) < 0.015
    assert set(counts) == {1, 2}


def test_a_sticky_key_always_gets_one_arm_and_keys_spread_by_weight() -> None:
    rng = random.Random(1)
    weights = {1: 80.0, 2: 20.0}
    first = {f"user-{i}": pick(weights, [1, 2], f"user-{i}", rng) for i in range(5000)}
    again = {key: pick(weights, [1, 2], key, rng) for key in first}
    assert first == again
    share = sum(1 for version in first.values() if version == 2) / len(first)
    assert abs(share - 0.20) < 0.03


def test_raising_a_weight_moves_keys_only_towards_that_arm() -> None:
    rng = random.Random(0)
    keys = [f"k{i}" for i in range(3000)]
    before = {key: pick({1: 90, 2: 10}, [1, 2], key, rng) for key in keys}
    after = {key: pick({1: 50, 2: 50}, [1, 2], key, rng) for key in keys}
    assert all(after[key] == 2 for key in keys if before[key] == 2)
    assert sum(1 for key in keys if before[key] != after[key]) > 0


def test_unavailable_or_zero_weight_arms_are_left_out() -> None:
    rng = random.Random(3)
    assert {pick({1: 50, 2: 50}, [1], None, rng) for _ in range(200)} == {1}
    assert {pick({1: 0, 2: 5}, [1, 2], "someone", rng) for _ in range(20)} == {2}
    assert pick({3: 1}, [1, 2], None, rng) is None


def test_sticky_header_names_are_lower_case() -> None:
    assert sticky_header("header:X-User") == "x-user"
    assert sticky_header(None) is None
