"""The image's start command, run directly on this machine (no Docker engine here).

The test reads the Dockerfile's final stage and starts its ENTRYPOINT + CMD as a subprocess
with the environment the image ends with, then changed only where a test machine must
differ: the virtualenv for /opt/venv, a temporary /models-like folder holding a fixture
model, free loopback ports instead of 8500/8501 on 0.0.0.0, and a temporary HOME and /tmp.
The ENTRYPOINT's console script is run as the module pyproject.toml maps it to, with this
tree on PYTHONPATH (the shared virtualenv's installed scripts may be older than this tree).
It waits until /v2/health/ready answers 200, runs the Dockerfile's own HEALTHCHECK command
against the running server (and against a dead port, where it must fail), predicts once,
asks gRPC health checking on the gRPC port, checks that the metrics the autoscaler relies on
are exported, then sends SIGTERM the way ``docker stop`` and Kubernetes do and expects a
clean exit (code 0).

This proves that the entrypoint, the image's environment and the health check work
together with the code on this machine's Python. It does not prove the image builds, that
the slim base image's Python behaves the same, or anything about GPUs.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import grpc
import httpx
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from loadtest.processes import stop
from tests.fixtures import half_plus_two
from tests.suites.deploy.conftest import REPO
from tests.suites.deploy.dockerfile import Dockerfile

START_TIMEOUT_S = 240
BASE_IMAGE_ENV = {
    "PATH": "/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin",
    "LANG": "C.UTF-8",
}
PASS_THROUGH = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")  # this machine's BLAS workarounds


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def image_environment(tmp_path: Path, models: Path) -> dict[str, str]:
    chain = Dockerfile(REPO / "Dockerfile").chain()
    env = Dockerfile.environment(chain, BASE_IMAGE_ENV)
    # The image's /tmp paths move into this test's folder first, then its venv becomes
    # ours (in that order: a CI checkout's venv may itself live under /tmp).
    env = {
        key: str(tmp_path / value[len("/tmp/") :]) if value.startswith("/tmp/") else value
        for key, value in env.items()
    }
    venv_bin = str(Path(sys.executable).parent)
    env = {key: value.replace("/opt/venv/bin", venv_bin) for key, value in env.items()}
    assert env["PRIMER_MODEL_BASE_PATH"] == "/models"
    env.update(
        PRIMER_MODEL_BASE_PATH=str(models),
        PRIMER_HOST="127.0.0.1",
        PRIMER_REST_PORT=str(free_port()),
        PRIMER_GRPC_PORT=str(free_port()),
        HOME=str(tmp_path / "home"),
        TMPDIR=str(tmp_path),
    )
    env.update({key: os.environ[key] for key in PASS_THROUGH if key in os.environ})
    (tmp_path / "home").mkdir()
    return env


def entrypoint_command(env: dict[str, str]) -> list[str]:
    """The image's ENTRYPOINT + CMD, its console script run as the module it maps to."""
    chain = Dockerfile(REPO / "Dockerfile").chain()
    script, *args = [
        *Dockerfile.last(chain, "ENTRYPOINT").exec_form(),
        *(Dockerfile.last(chain, "CMD").exec_form() or []),
    ]
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+, as in the image
    target = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"][script]
    module, _, function = target.partition(":")
    assert function == "main", target
    env["PYTHONPATH"] = str(REPO)
    return [sys.executable, "-m", module, *args]


def healthcheck_command() -> list[str]:
    healthcheck = Dockerfile.last(Dockerfile(REPO / "Dockerfile").chain(), "HEALTHCHECK")
    _, _, command = healthcheck.args.partition("CMD ")
    return json.loads(command)


def wait_ready(process: subprocess.Popen[bytes], url: str, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    with httpx.Client(timeout=2) as client:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                pytest.fail(
                    f"primer-serve exited with {process.returncode}:\n{log.read_text()[-4000:]}"
                )
            try:
                if client.get(url).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.25)  # polling a separate process: there is no event to wait on
    pytest.fail(f"not ready after {START_TIMEOUT_S} s:\n{log.read_text()[-4000:]}")


def test_image_entrypoint_serves_passes_its_healthcheck_and_drains(tmp_path: Path) -> None:
    models = tmp_path / "models"
    half_plus_two(models / "half_plus_two" / "1")
    env = image_environment(tmp_path, models)
    argv = entrypoint_command(env)
    rest = f"http://127.0.0.1:{env['PRIMER_REST_PORT']}"
    log = tmp_path / "server.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            argv, env=env, cwd=tmp_path, stdout=output, stderr=subprocess.STDOUT
        )
    try:
        wait_ready(process, f"{rest}/v2/health/ready", log)

        check = subprocess.run(healthcheck_command(), env=env, capture_output=True, timeout=30)
        assert check.returncode == 0, check.stderr.decode()
        dead = {**env, "PRIMER_REST_PORT": str(free_port())}
        check = subprocess.run(healthcheck_command(), env=dead, capture_output=True, timeout=30)
        assert check.returncode != 0, "the health check must fail when nothing answers"

        with httpx.Client(base_url=rest, timeout=60) as client:
            assert client.get("/v2/health/live").status_code == 200
            response = client.post(
                "/v1/models/half_plus_two:predict", json={"instances": [[1.0, 2.0, 3.0]]}
            )
            assert response.status_code == 200, response.text
            assert response.json() == {"predictions": [[2.5, 3.0, 3.5]]}
            metrics = client.get("/metrics").text
        with grpc.insecure_channel(f"127.0.0.1:{env['PRIMER_GRPC_PORT']}") as channel:
            health = health_pb2_grpc.HealthStub(channel)
            reply = health.Check(health_pb2.HealthCheckRequest(), timeout=30)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
        for name in ("primer_inflight_requests", "primer_queue_depth"):
            assert f'{name}{{model="half_plus_two",version="1"}}' in metrics, name
    finally:
        code = stop(process)
        if code is None:
            pytest.fail(f"no exit within 60 s of SIGTERM:\n{log.read_text()[-4000:]}")
    assert code == 0, log.read_text()[-4000:]


def test_image_entrypoint_serves_tf_servings_model_name_and_base_path(tmp_path: Path) -> None:
    """TF Serving's image variables: MODEL_NAME under MODEL_BASE_PATH is served, alone.

    As with ``docker run -e MODEL_NAME=... image --port=... --rest_api_port=...``: the flags
    appended to the command override the image's 8500/8501.
    """
    models = tmp_path / "tfs_models"
    half_plus_two(models / "half_plus_two" / "1")
    half_plus_two(models / "other" / "1")  # beside it, and not served: TF Serving's one model
    env = image_environment(tmp_path, tmp_path / "unused")
    grpc_port, rest_port = free_port(), free_port()
    env.update(MODEL_NAME="half_plus_two", MODEL_BASE_PATH=str(models))
    argv = [*entrypoint_command(env), f"--port={grpc_port}", f"--rest_api_port={rest_port}"]
    rest = f"http://127.0.0.1:{rest_port}"
    log = tmp_path / "server.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            argv, env=env, cwd=tmp_path, stdout=output, stderr=subprocess.STDOUT
        )
    try:
        wait_ready(process, f"{rest}/v2/health/ready", log)
        with httpx.Client(base_url=rest, timeout=60) as client:
            response = client.post(
                "/v1/models/half_plus_two:predict", json={"instances": [[1.0, 2.0, 5.0]]}
            )
            assert response.json() == {"predictions": [[2.5, 3.0, 4.5]]}, response.text
            assert client.get("/v1/models/half_plus_two").json() == {
                "model_version_status": [
                    {
                        "version": "1",
                        "state": "AVAILABLE",
                        "status": {"error_code": "OK", "error_message": ""},
                    }
                ]
            }
            assert client.get("/v1/models/other").status_code == 404
        with grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
            health = health_pb2_grpc.HealthStub(channel)
            reply = health.Check(health_pb2.HealthCheckRequest(), timeout=30)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
    finally:
        code = stop(process)
        if code is None:
            pytest.fail(f"no exit within 60 s of SIGTERM:\n{log.read_text()[-4000:]}")
    assert code == 0, log.read_text()[-4000:]
