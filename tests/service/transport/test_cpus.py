"""Whether the gRPC front runs under ``grpc_front_process: auto``: affinity and cgroup quota."""

from __future__ import annotations

import os
from pathlib import Path

import psutil
import pytest

from service.transport import cpus
from tests.conftest import ServerThread, make_settings


@pytest.mark.parametrize(
    ("content", "limit"),
    [
        ("max 100000\n", None),
        ("150000 100000\n", 1.5),
        ("400000 100000\n", 4.0),
        ("", None),
        ("lots of cpus\n", None),
        ("100000 0\n", None),
    ],
)
def test_the_cgroup_quota_is_read_as_cpus(tmp_path: Path, content: str, limit: float) -> None:
    cpu_max = tmp_path / "cpu.max"
    cpu_max.write_text(content)
    assert cpus.cgroup_cpu_limit(cpu_max) == limit


def test_no_cgroup_file_means_no_quota(tmp_path: Path) -> None:
    assert cpus.cgroup_cpu_limit(tmp_path / "absent") is None
    assert cpus.available_cpus(tmp_path / "absent") == len(os.sched_getaffinity(0))


def test_a_quota_caps_the_cpus_the_affinity_allows(tmp_path: Path) -> None:
    cpu_max = tmp_path / "cpu.max"
    cpu_max.write_text("50000 100000\n")
    assert cpus.available_cpus(cpu_max) == 0.5
    assert not cpus.front_pays_off(cpu_max)
    cpu_max.write_text(f"{100000 * 64} 100000\n")
    assert cpus.available_cpus(cpu_max) == len(os.sched_getaffinity(0))


def test_auto_serves_grpc_inline_under_a_one_cpu_quota(
    fixture_repository: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cpu_max = tmp_path / "cpu.max"
    cpu_max.write_text("100000 100000\n")
    monkeypatch.setattr(cpus, "CGROUP_CPU_MAX", cpu_max)
    thread = ServerThread(make_settings(fixture_repository)).start()
    try:
        port = thread.server.grpc_port
        owners = {
            c.pid
            for c in psutil.net_connections(kind="inet")
            if c.status == psutil.CONN_LISTEN and c.laddr.port == port and c.pid is not None
        }
        assert owners == {os.getpid()}
        assert thread.server.grpc._front is None
    finally:
        thread.stop()
