"""Overload: 5x capacity offered to a model-bound server, over REST and gRPC (slow tier).

``heavy`` does a fixed amount of compute per batch (one TensorFlow thread), so the server's
capacity is the model's: ``max_batch_size`` rows per batch time. Its queue holds two
batches (``max_enqueued_batches``). ``loadtest.overload`` measures capacity (closed loop),
then offers 5x that rate open-loop, then measures again. The excess must be refused with
429 / RESOURCE_EXHAUSTED within 10 ms (p99), admitted requests must keep a p99 within 2x
the at-capacity p99, nothing may fail otherwise, and throughput must come back.
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from loadtest.overload import overload_figure, targets
from tests import fixtures
from tests.suites.reliability.subprocess_server import serve

pytestmark = pytest.mark.slow
BATCH = 4


@pytest.mark.parametrize("protocol", ["rest", "grpc"])
def test_five_times_capacity_is_shed_fast_and_admitted_latency_holds(
    protocol: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    base: Path = tmp_path_factory.mktemp("overload_models")
    fixtures.heavy(base / "heavy" / "1")
    config = {
        "intra_op_threads": 1,
        "inter_op_threads": 1,
        "batching": {"max_batch_size": BATCH, "max_enqueued_batches": 2, "batch_timeout_ms": 5},
    }
    workdir = tmp_path_factory.mktemp(f"overload_{protocol}")
    with serve(base, workdir, config) as server:
        target = targets(f"127.0.0.1:{server.rest_port}", server.grpc_target, "heavy", "x", 4)[
            protocol
        ]
        figure = overload_figure(target, concurrency=2 * BATCH)
        with httpx.Client(base_url=server.rest_url, timeout=10) as client:
            assert client.get("/v2/health/ready").status_code == 200
        assert server.process.poll() is None, "the server crashed"
    capacity, overload, recovery = (figure[k] for k in ("capacity", "overload", "recovery"))
    print(f"overload {protocol}: " + json.dumps(figure))
    for phase in (capacity, overload, recovery):
        assert phase["errors"] == 0, phase
    assert capacity["refused"] == 0, capacity
    capacity_rate = capacity["ok"] / capacity["seconds"]
    offered = overload["ok"] + overload["refused"]
    assert overload["refused"] > 0.6 * offered, overload  # about 4/5 are excess
    # shed fast: a refusal is answered at least 10x sooner than an admitted request
    assert overload["refused_p99_ms"] < 0.1 * capacity["ok_p99_ms"], (overload, capacity)
    assert overload["ok_p99_ms"] < 2 * capacity["ok_p99_ms"], (overload, capacity)
    assert overload["ok"] / overload["seconds"] > 0.7 * capacity_rate, overload
    assert recovery["ok"] / recovery["seconds"] > 0.8 * capacity_rate, (recovery, capacity)
    assert recovery["refused"] == 0, recovery
