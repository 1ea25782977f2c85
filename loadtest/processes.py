"""Helpers for benchmark and load-test runs: free ports, server subprocesses, metrics."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_http_ok(url: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=2) as response:
            if response.status == 200:
                return
        time.sleep(0.2)
    raise TimeoutError(f"{url} did not answer 200 within {timeout:.0f}s")


@contextlib.contextmanager
def running(
    command: list[str],
    port: int,
    *,
    env: dict[str, str] | None = None,
    health_path: str = "/v2/health/ready",
    timeout: float = 300,
) -> Iterator[subprocess.Popen[bytes]]:
    """Run a server subprocess until the block ends; wait for its health URL first."""
    process = subprocess.Popen(command, env={**os.environ, **(env or {})}, start_new_session=True)
    try:
        wait_http_ok(f"http://127.0.0.1:{port}{health_path}", timeout)
        yield process
    finally:
        stop(process)


def stop(process: subprocess.Popen[bytes], timeout: float = 60) -> int | None:
    """SIGTERM (if still running) and the exit code; SIGKILL and None after ``timeout``."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        return process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        return None


def samples(metrics_url: str, family: str) -> Iterator[Sample]:
    """The samples of one metric family scraped from ``metrics_url`` now."""
    with urllib.request.urlopen(metrics_url, timeout=10) as response:
        text = response.read().decode()
    for parsed in text_string_to_metric_families(text):
        if parsed.name == family:
            yield from parsed.samples


def metric_sum(metrics_url: str | None, name: str, model: str) -> tuple[float, float] | None:
    """(sum, count) of histogram ``name`` summed over the versions of ``model``."""
    if metrics_url is None:
        return None
    total, count = 0.0, 0.0
    for sample in samples(metrics_url, name):
        if sample.labels.get("model") != model:
            continue
        if sample.name == f"{name}_sum":
            total += sample.value
        elif sample.name == f"{name}_count":
            count += sample.value
    return total, count


def request_codes(metrics_url: str, model: str, protocol: str) -> dict[str, float]:
    """Answers the server counted for ``model`` over ``protocol``, by status code."""
    codes: dict[str, float] = {}
    for sample in samples(metrics_url, "primer_requests"):
        labels = sample.labels
        if (
            sample.name == "primer_requests_total"
            and labels.get("model") == model
            and labels.get("protocol") == protocol
        ):
            codes[labels["code"]] = codes.get(labels["code"], 0.0) + sample.value
    return codes


def failed_calls(
    before: dict[str, float], after: dict[str, float], measured_ok: int, concurrency: int
) -> int:
    """Calls the server did not answer OK between two ``request_codes`` snapshots.

    A load generator that stops with ``concurrency`` calls in flight cancels them: up to
    that many CANCELLED answers are the run's end, not failures. Measured calls the server
    did not count as OK (e.g. rejected before the inference core) are failures too.
    """
    delta = {code: after.get(code, 0.0) - before.get(code, 0.0) for code in after}
    failed = sum(n for code, n in delta.items() if code != "OK")
    failed -= min(delta.get("CANCELLED", 0.0), concurrency)
    return int(failed + max(0, measured_ok - delta.get("OK", 0.0)))


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) a process has used so far, from ``/proc/<pid>/stat``."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
