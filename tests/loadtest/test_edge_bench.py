"""The slowloris bench on 127.0.0.1: a short run with few connections and a 1 s header
timeout, checking what it reports, never how fast anything was."""

from __future__ import annotations

import json
from pathlib import Path

from loadtest import edge_bench


def test_the_edge_bench_reports_each_round_and_every_stalled_connection_closed(
    tmp_path: Path,
) -> None:
    out = tmp_path / "edge.json"
    argv = ["--rounds", "2", "--connections", "200", "--header-timeout-s", "1", "--out", str(out)]

    assert edge_bench.main(argv) == 0

    report = json.loads(out.read_text())
    assert report["connections"] == 200
    assert report["client_failures"] == 0
    assert len(report["rounds"]) == 2
    for row in report["rounds"]:
        assert row["closed_late"] == 0
        assert 0.9 <= row["slowest_close_s"] <= 1.0 + edge_bench.SLACK_S
        assert row["requests_during"] > 0
        assert row["p99_ratio"] == round(row["attack_p99_ms"] / row["baseline_p99_ms"], 3) or (
            abs(row["p99_ratio"] - row["attack_p99_ms"] / row["baseline_p99_ms"]) < 0.05
        )
    ratios = sorted(row["p99_ratio"] for row in report["rounds"])
    assert report["median_p99_ratio"] == round((ratios[0] + ratios[1]) / 2, 3)
