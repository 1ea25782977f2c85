"""The peer comparison's arithmetic and both benches' charts (the live run needs the peer's
own virtualenv: ``make bench-peers``)."""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from loadtest.charts import bench_chart, peers_chart
from loadtest.peers import compare


def _row(rate: float, p99: float = 10.0, errors: int = 0) -> dict:
    return {"requests_per_s": rate, "p99_ms": p99, "errors": errors}


ROWS = {
    "primer_tfserving_json": [_row(300), _row(330), _row(280)],
    "primer_v2_json": [_row(200), _row(200), _row(200)],
    "primer_v2_binary": [_row(400), _row(390), _row(410)],
    "triton_v2_json": [_row(100), _row(110), _row(140)],
    "triton_v2_binary": [_row(200), _row(200), _row(205)],
    "naive_tfserving_json": [_row(50, errors=1), _row(55), _row(60)],
}


def test_ratios_are_per_round_against_the_same_body_form() -> None:
    comparison = compare(ROWS)
    tfs = comparison["primer_tfserving_json"]
    assert tfs["baseline"] == "triton_v2_json"
    assert tfs["ratios"] == [3.0, 3.0, 2.0]  # 280 / 140 in the third round
    assert tfs["median_ratio"] == 3.0
    assert comparison["primer_v2_binary"]["baseline"] == "triton_v2_binary"
    assert comparison["primer_v2_binary"]["ratios"] == [2.0, 1.95, 2.0]
    assert "baseline" not in comparison["triton_v2_json"]
    assert comparison["naive_tfserving_json"]["errors"] == 1


def test_both_charts_are_pngs(tmp_path: Path) -> None:
    peers = {"concurrency": 32, "rounds": 3, "seconds": 10, "scenarios": compare(ROWS)}
    bench = {
        "served": {
            "mnist_json": [
                {"concurrency": c, "requests_per_s": 100.0 * c, "p99_ms": 2.0 * c} for c in (1, 8)
            ]
        }
    }
    for chart in (
        peers_chart(peers, tmp_path / "peers.png"),
        bench_chart(bench, tmp_path / "b.png"),
    ):
        with Image.open(chart) as image:
            assert image.format == "PNG" and image.width > 500


def test_a_baseline_tree_is_compared_with_triton_and_with_this_tree_per_round() -> None:
    rows = {
        **ROWS,
        "before_tfserving_json": [_row(150), _row(300), _row(140)],
        "before_v2_binary": [_row(200), _row(195), _row(205)],
    }
    comparison = compare(rows)
    after = comparison["primer_tfserving_json"]
    assert after["ratios_to_before"] == [2.0, 1.1, 2.0]
    assert after["median_ratio_to_before"] == 2.0
    assert comparison["primer_v2_binary"]["ratios_to_before"] == [2.0, 2.0, 2.0]
    assert "ratios_to_before" not in comparison["primer_v2_json"]  # no before_ twin
    before = comparison["before_tfserving_json"]
    assert before["baseline"] == "triton_v2_json"
    assert before["ratios"] == [1.5, 2.727, 1.0]
    assert "ratios_to_before" not in before
