"""Version churn and sustained load: no failed request, no memory growth (slow tier).

``primer-serve`` runs as a subprocess polling its model folder every 0.2 s. Twenty new
versions of mnist_dnn are exported (copied into place atomically: a temporary folder
renamed to the version number) one after another under continuous REST and gRPC load;
each swap must be availability-preserving (zero failed requests), and the server's RSS
(``VmRSS``) after the churn must be within 10% of its value after the first swap. A second
test holds a steady load for a bounded time and checks that RSS stays flat after warm-up.
"""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path

import grpc
import httpx
import numpy as np
import pytest
from tensorflow.core.framework import types_pb2
from tensorflow_serving.apis import prediction_service_pb2_grpc

from tests.conftest import SHIPPED_MODELS
from tests.suites.reliability.clients import predict_request, tensor_proto
from tests.suites.reliability.subprocess_server import ServerProcess, serve

pytestmark = pytest.mark.slow
VERSIONS = 20
MIB = 1 << 20
TEMPLATE = SHIPPED_MODELS / "mnist_dnn" / "1"
DIGIT = np.zeros((1, 28, 28), np.float32)


class Load:
    """Closed-loop REST and gRPC clients in threads, counting answers and failures."""

    def __init__(self, server: ServerProcess, clients: int = 2) -> None:
        self.ok = 0
        self.failures: list[str] = []
        self.versions: set[str] = set()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [
            threading.Thread(target=target, args=(server,), daemon=True)
            for target in (self._rest, self._grpc)
            for _ in range(clients)
        ]

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=60)

    def _record(self, check: Callable[[], str]) -> None:
        try:
            version = check()
        except Exception as exc:  # any failure at all is what this test looks for
            with self._lock:
                self.failures.append(f"{type(exc).__name__}: {str(exc)[:200]}")
            return
        with self._lock:
            self.ok += 1
            self.versions.add(version)

    def _rest(self, server: ServerProcess) -> None:
        body = {
            "inputs": [
                {
                    "name": "image",
                    "datatype": "FP32",
                    "shape": [1, 28, 28],
                    "data": DIGIT.ravel().tolist(),
                }
            ]
        }
        with httpx.Client(base_url=server.rest_url, timeout=30) as client:

            def check() -> str:
                response = client.post("/v2/models/mnist_dnn/infer", json=body)
                assert response.status_code == 200, response.text
                doc = response.json()
                assert len(doc["outputs"][0]["data"]) == 10
                return doc["model_version"]

            while not self._stop.is_set():
                self._record(check)

    def _grpc(self, server: ServerProcess) -> None:
        proto = tensor_proto(types_pb2.DT_FLOAT, [1, 28, 28], tensor_content=DIGIT.tobytes())
        request = predict_request("mnist_dnn", {"image": proto})
        with grpc.insecure_channel(server.grpc_target) as channel:
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)

            def check() -> str:
                response = stub.Predict(request, timeout=30)
                scores = np.array(next(iter(response.outputs.values())).float_val, np.float32)
                assert scores.shape == (10,)
                return str(response.model_spec.version.value)

            while not self._stop.is_set():
                self._record(check)


def export(base: Path, version: int) -> None:
    """Put a new version in place atomically (a temporary folder renamed into place)."""
    staging = base / "mnist_dnn" / f".tmp-{version}"
    shutil.copytree(TEMPLATE, staging)
    staging.rename(base / "mnist_dnn" / str(version))


def wait_serving_only(client: httpx.Client, version: int, timeout: float = 120) -> None:
    """Until ``version`` is AVAILABLE and every older version has been unloaded."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        states = {
            s["version"]: s["state"]
            for s in client.get("/v1/models/mnist_dnn").json()["model_version_status"]
        }
        if states == {str(version): "AVAILABLE"}:
            return
        time.sleep(0.05)  # another process's poll loop: nothing to wait on but its answers
    raise AssertionError(f"version {version} not alone AVAILABLE: {states}")


@pytest.fixture
def repository(tmp_path: Path) -> Path:
    assert TEMPLATE.exists(), f"the shipped model {TEMPLATE} is missing (make train-mnist)"
    base = tmp_path / "models"
    (base / "mnist_dnn").mkdir(parents=True)
    export(base, 1)
    return base


def test_twenty_versions_under_load_without_a_failure_or_a_leak(
    repository: Path, tmp_path: Path
) -> None:
    rss: dict[int, int] = {}
    with (
        serve(repository, tmp_path, None, "--poll-interval-s", "0.2") as server,
        Load(server) as load,
        httpx.Client(base_url=server.rest_url, timeout=30) as http,
    ):
        for version in range(2, VERSIONS + 2):
            export(repository, version)
            wait_serving_only(http, version)
            shutil.rmtree(repository / "mnist_dnn" / str(version - 1))
            time.sleep(0.3)  # a little load on the new version before the next swap
            rss[version] = server.rss_bytes()
        time.sleep(1)
    assert load.failures == [], load.failures[:5]
    assert load.ok > 200
    assert {str(v) for v in range(2, VERSIONS + 2)} <= load.versions
    first, last = rss[2], rss[VERSIONS + 1]
    summary = ", ".join(f"v{v} {size / MIB:.0f}" for v, size in rss.items())
    print(
        f"churn: {load.ok} requests, 0 failed; RSS after the first swap "
        f"{first / MIB:.0f} MiB, after {VERSIONS} swaps {last / MIB:.0f} MiB "
        f"({(last - first) / first:+.1%}); per version (MiB): {summary}"
    )
    assert last <= first * 1.10, summary


SUSTAINED_S = 120
WARM_UP_S = 20


def test_rss_is_flat_under_sustained_load(repository: Path, tmp_path: Path) -> None:
    samples: list[tuple[float, int]] = []
    with serve(repository, tmp_path) as server, Load(server, clients=4) as load:
        started = time.monotonic()
        while (elapsed := time.monotonic() - started) < SUSTAINED_S:
            time.sleep(5)
            samples.append((elapsed, server.rss_bytes()))
    assert load.failures == [], load.failures[:5]
    warm = [size for at, size in samples if at >= WARM_UP_S]
    summary = ", ".join(f"{at:.0f}s {size / MIB:.0f}" for at, size in samples)
    print(
        f"sustained: {load.ok} requests in {SUSTAINED_S} s; RSS after warm-up "
        f"{warm[0] / MIB:.0f} → {warm[-1] / MIB:.0f} MiB (max {max(warm) / MIB:.0f}); "
        f"samples (MiB): {summary}"
    )
    assert max(warm) <= warm[0] * 1.05, summary
