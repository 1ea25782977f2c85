"""``primer-serve`` as a subprocess on loopback ports, for drain, churn and overload tests."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml

from loadtest.processes import free_port, stop

START_TIMEOUT_S = 240


@dataclass
class ServerProcess:
    """A running ``primer-serve`` and where to reach it."""

    process: subprocess.Popen[bytes]
    rest_port: int
    grpc_port: int
    log: Path

    @property
    def rest_url(self) -> str:
        return f"http://127.0.0.1:{self.rest_port}"

    @property
    def grpc_target(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    def rss_bytes(self) -> int:
        """Resident set size of the server (``VmRSS`` in /proc/<pid>/status)."""
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise RuntimeError("no VmRSS line")

    def terminate(self, timeout: float = 60) -> int:
        """SIGTERM, then the exit code (killed and failed after ``timeout``)."""
        code = stop(self.process, timeout)
        if code is None:
            raise AssertionError(f"no exit within {timeout} s of SIGTERM:\n{self.tail()}")
        return code

    def tail(self, chars: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-chars:]

    def access_records(self) -> list[dict[str, Any]]:
        """The JSON access-log lines written so far (needs --access-log --log-json)."""
        records = []
        for line in self.log.read_text(errors="replace").splitlines():
            if line.startswith("{") and '"primer.access"' in line:
                records.append(json.loads(line))
        return records


@contextlib.contextmanager
def serve(
    base: Path, workdir: Path, config: dict[str, Any] | None = None, *args: str
) -> Iterator[ServerProcess]:
    """Start ``primer-serve`` over ``base`` and wait until it is ready; SIGTERM at the end."""
    rest, grpc_port = free_port(), free_port()
    command = [
        str(Path(sys.executable).parent / "primer-serve"),
        "--model-base-path",
        str(base),
        "--host",
        "127.0.0.1",
        "--rest-port",
        str(rest),
        "--grpc-port",
        str(grpc_port),
        *args,
    ]
    if config is not None:
        config_file = workdir / "serve.yaml"
        config_file.write_text(yaml.safe_dump(config))
        command += ["--config", str(config_file)]
    log = workdir / "server.log"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    with log.open("wb") as output:
        process = subprocess.Popen(
            command, stdout=output, stderr=subprocess.STDOUT, env=env, cwd=workdir
        )
    server = ServerProcess(process, rest, grpc_port, log)
    try:
        wait_ready(server)
        yield server
    finally:
        stop(process)


def wait_ready(server: ServerProcess) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    with httpx.Client(timeout=2) as client:
        while time.monotonic() < deadline:
            if server.process.poll() is not None:
                raise AssertionError(
                    f"primer-serve exited with {server.process.returncode}:\n{server.tail()}"
                )
            with contextlib.suppress(httpx.TransportError):
                if client.get(f"{server.rest_url}/v2/health/ready").status_code == 200:
                    return
            time.sleep(0.2)  # another process: nothing to wait on but its port
    raise AssertionError(f"not ready after {START_TIMEOUT_S} s:\n{server.tail()}")
