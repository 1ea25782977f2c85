"""Run ``primer-train`` as real processes (one per worker) and read their logs."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

from tests.training.conftest import REPO_ROOT


def free_ports(count: int) -> list[int]:
    """Ports free on 127.0.0.1 right now (the OS picks them)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def tf_config(ports: list[int], index: int) -> str:
    """TF_CONFIG for worker ``index`` of a cluster on 127.0.0.1."""
    workers = [f"127.0.0.1:{port}" for port in ports]
    return json.dumps({"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}})


def start(
    argv: list[str], log: Path, config: str | None = None, tmpdir: Path | None = None
) -> subprocess.Popen[bytes]:
    """``python -m training.cli ARGV`` with its output appended to ``log``.

    Args:
        config: the TF_CONFIG to give the process (none if None).
        tmpdir: its TMPDIR, to see what temporary files it leaves behind.
    """
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "TF_CPP_MIN_LOG_LEVEL": "2"}
    if tmpdir is not None:
        tmpdir.mkdir(parents=True, exist_ok=True)
        env["TMPDIR"] = str(tmpdir)
    env.pop("TF_CONFIG", None)
    if config is not None:
        env["TF_CONFIG"] = config
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "training.cli", *argv], cwd=REPO_ROOT, env=env,
            stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip


def wait_for(log: Path, text: str, process: subprocess.Popen[bytes], timeout: float) -> None:
    """Wait until ``text`` is in ``log``; fail if the process ends first or time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in log.read_text(errors="replace"):
            return
        if process.poll() is not None:
            raise AssertionError(
                f"exited {process.returncode} before {text!r}:\n{log.read_text()[-3000:]}"
            )
        time.sleep(0.05)
    raise AssertionError(f"no {text!r} within {timeout} s:\n{log.read_text()[-3000:]}")


def lines(log: Path) -> list[str]:
    """The ``primer-train:`` lines of a log."""
    return [
        line
        for line in log.read_text(errors="replace").splitlines()
        if line.startswith("primer-train:")
    ]
