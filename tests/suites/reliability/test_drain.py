"""Graceful shutdown: SIGTERM under continuous REST and gRPC load loses no admitted request.

``primer-serve`` runs as a subprocess with the access log on (JSON lines). Its ``held``
model's batches wait 0.8 s to fill, so at any moment about one batch of requests is
admitted and waiting. Client threads send without pause over both protocols; then SIGTERM.
The server must turn not-ready at once, refuse new work (connection refused / UNAVAILABLE),
answer every request it admitted in full, and exit 0 within --shutdown-timeout-s.
"""

from __future__ import annotations

import signal
import threading
import time
import uuid
from dataclasses import dataclass, field

import grpc
import httpx
import numpy as np
from tensorflow.core.framework import types_pb2
from tensorflow_serving.apis import prediction_service_pb2_grpc

from tests import fixtures
from tests.suites.reliability.clients import predict_request, tensor_proto
from tests.suites.reliability.subprocess_server import ServerProcess, serve

SHUTDOWN_TIMEOUT_S = 10
CLIENTS_PER_PROTOCOL = 6
HELD_MS = 800


@dataclass
class Tally:
    """What the clients of one protocol saw, with completion times."""

    ok_ids: set[str] = field(default_factory=set)
    ok_after_sigterm: int = 0
    refused: int = 0
    failures: list[str] = field(default_factory=list)
    failed_ids: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)


def rest_client(
    server: ServerProcess, tally: Tally, sigterm: list[float], stop: threading.Event
) -> None:
    with httpx.Client(base_url=server.rest_url, timeout=30) as client:
        while not stop.is_set():
            value = float(np.random.default_rng().integers(0, 100))
            rid = uuid.uuid4().hex
            try:
                response = client.post(
                    "/v1/models/held:predict",
                    json={"instances": [[value] * 3]},
                    headers={"x-request-id": rid},
                )
            except (httpx.ConnectError, httpx.RemoteProtocolError):
                # refused, or a kept-alive connection closed before the request was read
                with tally.lock:
                    tally.refused += 1
                    tally.failed_ids.add(rid)
                if sigterm:
                    return
                continue
            except httpx.HTTPError as exc:
                with tally.lock:
                    tally.failures.append(f"{type(exc).__name__}: {exc}")
                    tally.failed_ids.add(rid)
                return
            with tally.lock:
                if response.status_code == 200 and response.json() == {
                    "predictions": [[value * 0.5 + 2] * 3]
                }:
                    tally.ok_ids.add(rid)
                    tally.ok_after_sigterm += bool(sigterm)
                else:
                    tally.failures.append(f"{response.status_code}: {response.text[:200]}")
                    tally.failed_ids.add(rid)


def grpc_client(
    server: ServerProcess, tally: Tally, sigterm: list[float], stop: threading.Event
) -> None:
    with grpc.insecure_channel(server.grpc_target) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        while not stop.is_set():
            value = float(np.random.default_rng().integers(0, 100))
            proto = tensor_proto(types_pb2.DT_FLOAT, [1, 3], float_val=[value] * 3)
            try:
                response = stub.Predict(predict_request("held", {"x": proto}), timeout=30)
            except grpc.RpcError as exc:
                with tally.lock:
                    if exc.code() is grpc.StatusCode.UNAVAILABLE:
                        tally.refused += 1
                    else:
                        tally.failures.append(f"{exc.code().name}: {exc.details()}")
                if sigterm or exc.code() is not grpc.StatusCode.UNAVAILABLE:
                    return
                continue
            y = np.array(response.outputs["y"].float_val, np.float32)
            with tally.lock:
                if y.tolist() == [value * 0.5 + 2] * 3:
                    tally.ok_ids.add(uuid.uuid4().hex)
                    tally.ok_after_sigterm += bool(sigterm)
                else:
                    tally.failures.append(f"wrong answer {y.tolist()} for {value}")


def test_sigterm_under_load_finishes_every_admitted_request(tmp_path) -> None:
    base = tmp_path / "models"
    fixtures.half_plus_two(base / "held" / "1")
    config = {
        "models": {
            "held": {
                "batching": {
                    "max_batch_size": 64,
                    "batch_timeout_ms": HELD_MS,
                    "batch_fill_gap_ms": 0,
                }
            }
        }
    }
    with serve(
        base,
        tmp_path,
        config,
        "--shutdown-timeout-s",
        str(SHUTDOWN_TIMEOUT_S),
        "--access-log",
        "--log-json",
    ) as server:
        rest, grpc_tally = Tally(), Tally()
        sigterm: list[float] = []
        stop = threading.Event()
        threads = [
            threading.Thread(target=rest_client, args=(server, rest, sigterm, stop))
            for _ in range(CLIENTS_PER_PROTOCOL)
        ]
        threads += [
            threading.Thread(target=grpc_client, args=(server, grpc_tally, sigterm, stop))
            for _ in range(CLIENTS_PER_PROTOCOL)
        ]
        for thread in threads:
            thread.start()
        time.sleep(2.5)  # steady load: about three held batches' worth
        assert len(rest.ok_ids) > 0 and len(grpc_tally.ok_ids) > 0, server.tail()
        sigterm.append(time.monotonic())
        server.process.send_signal(signal.SIGTERM)
        with httpx.Client(timeout=2) as probe:  # not ready at once: 503 or refused
            time.sleep(0.3)
            try:
                ready = probe.get(f"{server.rest_url}/v2/health/ready").status_code
            except httpx.TransportError:
                ready = None
        assert ready != 200
        code = server.terminate(timeout=SHUTDOWN_TIMEOUT_S + 30)
        exit_s = time.monotonic() - sigterm[0]
        stop.set()
        for thread in threads:
            thread.join(timeout=60)
        records = server.access_records()
    assert code == 0, server.tail()
    assert exit_s < SHUTDOWN_TIMEOUT_S + 5
    for tally in (rest, grpc_tally):
        assert tally.failures == [], tally.failures[:5]
        assert tally.ok_after_sigterm > 0, "no request was in flight at SIGTERM"
    served = {r["protocol"]: [] for r in records}
    for r in records:
        served[r["protocol"]].append(r)
    assert all(r["status"] == "OK" for r in records), [r for r in records if r["status"] != "OK"][
        :3
    ]
    # every request the server answered reached its client in full
    rest_served = {r["request_id"] for r in served.get("rest_tfserving", [])}
    assert rest_served == rest.ok_ids
    assert not rest_served & rest.failed_ids
    assert len(served.get("grpc_tfserving", [])) == len(grpc_tally.ok_ids)
    print(
        f"drain: REST {len(rest.ok_ids)} ok ({rest.ok_after_sigterm} finished after "
        f"SIGTERM, {rest.refused} refused); gRPC {len(grpc_tally.ok_ids)} ok "
        f"({grpc_tally.ok_after_sigterm} after SIGTERM, {grpc_tally.refused} refused); "
        f"exit 0 after {exit_s:.2f} s"
    )
