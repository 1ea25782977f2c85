"""The two-tree comparison's arithmetic: fractions of the floor and after ÷ before, each
within its own round."""

from __future__ import annotations

from loadtest.ab_trees import summarize


def _row(rate: float, p50: float = 1.0) -> dict:
    return {"requests_per_s": rate, "p50_ms": p50}


def test_fractions_and_ratios_pair_each_tree_with_its_own_round() -> None:
    rows = {
        "before_c32": [_row(100), _row(90), _row(80)],
        "after_c32": [_row(150), _row(180), _row(80)],
        "floor_c32": [_row(1000), _row(600), _row(800)],
        "before_c1": [_row(1, 1.0), _row(1, 1.2), _row(1, 1.1)],
        "after_c1": [_row(1, 0.8), _row(1, 0.9), _row(1, 1.1)],
    }
    summary = summarize(rows)
    assert summary["before"]["fraction_of_floor_c32"] == [0.1, 0.15, 0.1]
    assert summary["after"]["fraction_of_floor_c32"] == [0.15, 0.3, 0.1]
    assert summary["after"]["median_fraction_of_floor_c32"] == 0.15
    assert summary["after_over_before"]["requests_per_s_c32"] == [1.5, 2.0, 1.0]
    assert summary["after_over_before"]["p50_c1"] == [0.8, 0.75, 1.0]
    assert summary["after"]["median_p50_ms_c1"] == 0.9
