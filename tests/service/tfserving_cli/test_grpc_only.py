"""``tensorflow_model_server --rest_api_port=0``: gRPC only, as TF Serving serves it.

TF Serving starts no HTTP server when ``--rest_api_port`` is 0. Here the process is given
a REST port through ``PRIMER_REST_PORT`` as well, to show the flag turns REST off rather
than leaving the setting's port open; the process's listening sockets are then read from
the operating system.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import grpc
import psutil
import pytest
from tensorflow_serving.apis import (
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from loadtest.processes import stop
from tests.conftest import REPO_ROOT
from tests.fixtures import half_plus_two
from tests.suites.deploy.test_entrypoint import free_port

START_TIMEOUT_S = 240
AVAILABLE = get_model_status_pb2.ModelVersionStatus.AVAILABLE


def wait_until_available(process: subprocess.Popen[bytes], target: str, log: Path) -> None:
    """Poll gRPC GetModelStatus (there is no REST to poll) until version 1 is AVAILABLE."""
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = "half"
    deadline = time.monotonic() + START_TIMEOUT_S
    with grpc.insecure_channel(target) as channel:
        stub = model_service_pb2_grpc.ModelServiceStub(channel)
        while True:
            if process.poll() is not None:
                pytest.fail(f"exited with {process.returncode}:\n{log.read_text()[-4000:]}")
            try:
                states = [
                    s.state for s in stub.GetModelStatus(request, timeout=5).model_version_status
                ]
                if AVAILABLE in states:
                    return
            except grpc.RpcError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"not ready in {START_TIMEOUT_S} s:\n{log.read_text()[-4000:]}")
            time.sleep(0.25)


def listening_ports(pid: int) -> set[int]:
    """Ports the server listens on, itself or through its gRPC front process."""
    server = psutil.Process(pid)
    return {
        c.laddr.port
        for process in (server, *server.children(recursive=True))
        for c in process.net_connections(kind="inet")
        if c.status == psutil.CONN_LISTEN
    }


def test_rest_api_port_zero_serves_grpc_only(tmp_path: Path) -> None:
    half_plus_two(tmp_path / "half" / "1")
    grpc_port, rest_port = free_port(), free_port()
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO_ROOT),
        "PRIMER_HOST": "127.0.0.1",
        "PRIMER_REST_PORT": str(rest_port),
    }
    argv = [
        sys.executable,
        "-m",
        "service.tfserving_cli.main",
        f"--port={grpc_port}",
        "--rest_api_port=0",
        "--model_name=half",
        f"--model_base_path={tmp_path / 'half'}",
    ]
    log = tmp_path / "server.log"
    with log.open("wb") as output:
        process = subprocess.Popen(argv, env=env, stdout=output, stderr=subprocess.STDOUT)
    try:
        target = f"127.0.0.1:{grpc_port}"
        wait_until_available(process, target, log)
        request = predict_pb2.PredictRequest()
        request.model_spec.name = "half"
        request.inputs["x"].dtype = 1  # DT_FLOAT
        request.inputs["x"].tensor_shape.dim.add(size=1)
        request.inputs["x"].tensor_shape.dim.add(size=3)
        request.inputs["x"].float_val.extend([1.0, 2.0, 3.0])
        with grpc.insecure_channel(target) as channel:
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            response = stub.Predict(request, timeout=30)
        assert list(response.outputs["y"].float_val) == [2.5, 3.0, 3.5]
        assert listening_ports(process.pid) == {grpc_port}
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", rest_port), timeout=5).close()
        assert "REST off, gRPC on 127.0.0.1" in log.read_text()
    finally:
        code = stop(process)
    assert code == 0, log.read_text()[-4000:]
