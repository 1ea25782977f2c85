"""The bench's head-to-head stage: the mnist protocols in interleaved rounds."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from loadtest.processes import free_port, running
from loadtest.scenarios import Scenario, v2_binary_scenario, write_payloads
from loadtest.stages import (
    compare_rounds,
    drive_head_to_head,
    floor_command,
    floor_fractions,
    floor_loads,
    head_to_head,
)
from tests.conftest import ServerThread


def test_each_round_starts_one_protocol_further_along() -> None:
    calls: list[str] = []

    def load(name: str) -> Any:
        def run() -> dict[str, Any]:
            calls.append(name)
            return {"round": sum(c == name for c in calls)}

        return run

    rows = head_to_head({name: load(name) for name in "abc"}, rounds=4)
    assert calls == list("abcbcacababc")
    assert rows == {name: [{"round": n} for n in (1, 2, 3, 4)] for name in "abc"}


def test_ratios_pair_each_protocol_with_the_baseline_of_its_own_round() -> None:
    def runs(*rates: float) -> list[dict[str, Any]]:
        return [{"requests_per_s": rate, "errors": 0} for rate in rates]

    comparison = compare_rounds(
        {"mnist_json": runs(5000.0, 4000.0, 6000.0), "grpc": runs(5500.0, 4000.0, 5400.0)}
    )
    grpc = comparison["grpc"]
    assert grpc["ratio_to_mnist_json"] == [1.1, 1.0, 0.9]
    assert grpc["median_ratio"] == 1.0
    assert grpc["median_requests_per_s"] == 5400.0
    assert comparison["mnist_json"]["median_ratio"] == 1.0


def test_floor_fractions_pair_each_scenario_with_its_protocols_floor_of_the_same_round() -> None:
    def runs(*rates: float) -> list[dict[str, Any]]:
        return [{"requests_per_s": rate, "errors": 0} for rate in rates]

    fractions = floor_fractions(
        {
            "mnist_json": runs(600.0, 700.0, 500.0),
            "mnist_grpc_v2": runs(400.0, 450.0, 500.0),
            "floor_rest": runs(4000.0, 7000.0, 5000.0),
            "floor_grpc": runs(1000.0, 1000.0, 1000.0),
        }
    )
    assert fractions["mnist_json"]["fractions"] == [0.15, 0.1, 0.1]
    assert fractions["mnist_json"]["median_fraction"] == 0.1
    assert fractions["mnist_grpc_v2"]["floor"] == "grpc"
    assert fractions["mnist_grpc_v2"]["median_fraction"] == 0.45
    assert set(fractions) == {"mnist_json", "mnist_grpc_v2"}  # no rows, no fraction


def test_the_mnist_protocols_run_against_a_live_server(
    server: ServerThread, tmp_path: Path
) -> None:
    if "mnist_dnn" not in server.server.manager.model_names():
        pytest.fail("the shipped mnist_dnn model is missing from models/")
    rest = [
        Scenario("mnist_json", "mnist_dnn", write_payloads(tmp_path)["mnist_json"], 1.0, False),
        v2_binary_scenario(tmp_path, 1.0),
    ]
    floor_rest, floor_grpc = free_port(), free_port()
    with running(floor_command(floor_rest, floor_grpc), floor_rest, health_path="/"):
        result = drive_head_to_head(
            server.server.rest_port,
            server.server.grpc_port,
            rest,
            concurrency=2,
            rounds=2,
            seconds=1.0,
            metrics_url=f"{server.rest_url}/metrics",
            client="h2load",
            floor=floor_loads(floor_rest, floor_grpc, 2, 1.0, rest[0].body),
        )
    protocols = result["protocols"]
    assert set(protocols) == {
        "mnist_json",
        "mnist_v2_binary",
        "mnist_grpc_tfserving",
        "mnist_grpc_v2",
    }
    for name, entry in protocols.items():
        assert len(entry["requests_per_s"]) == 2 and min(entry["requests_per_s"]) > 0, name
        assert entry["errors"] == 0, name
    fractions = result["floor_fractions"]
    assert set(fractions) == set(protocols)  # the floors ran in the rounds, not as protocols
    for name, entry in fractions.items():
        assert len(entry["floor_requests_per_s"]) == 2 and min(entry["floor_requests_per_s"]) > 0
        assert entry["median_fraction"] > 0, name
