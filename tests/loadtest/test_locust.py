"""Locust smoke run: ~15 s headless against a live server, judged from Locust's CSV."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ServerThread
from tests.suites.observability.helpers import REPO_ROOT

RUN_S = 15
REST_TASKS = {"REST predict instances", "REST predict b64", "REST classify png"}
GRPC_TASKS = {"gRPC TFS Predict", "gRPC v2 ModelInfer"}


def grpc_port(server: ServerThread) -> int:
    """The live server's gRPC port, or 0 while the server has no gRPC listener."""
    return int(getattr(server.server, "grpc_port", 0) or 0)


@pytest.fixture(scope="module")
def locust_run(
    server: ServerThread, fixture_repository: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[dict[str, dict], Path]:
    """One headless Locust run; its stats rows keyed by request name, and its output dir."""
    locust = Path(sys.executable).parent / "locust"
    assert locust.exists(), "locust is missing: it is in the dev extra (make install)"
    out = tmp_path_factory.mktemp("locust")
    model = "mnist_dnn" if (fixture_repository / "mnist_dnn").is_dir() else "tiny_image"
    users = ["RestUser"]
    args = []
    if grpc_port(server):
        users.append("GrpcUser")
        args = ["--grpc-target", f"127.0.0.1:{grpc_port(server)}"]
    command = [
        str(locust),
        "-f",
        str(REPO_ROOT / "loadtest" / "locustfile.py"),
        "--headless",
        "--host",
        server.rest_url,
        "-u",
        "6",
        "-r",
        "6",
        "-t",
        f"{RUN_S}s",
        "--stop-timeout",
        "5",
        "--csv",
        str(out / "smoke"),
        "--html",
        str(out / "smoke.html"),
        "--only-summary",
        "--model",
        model,
        *args,
        *users,
    ]
    completed = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=RUN_S + 120,
        cwd=REPO_ROOT,
        stdin=subprocess.DEVNULL,
    )
    assert completed.returncode == 0, completed.stdout[-4000:] + completed.stderr[-4000:]
    with (out / "smoke_stats.csv").open() as f:
        rows = {row["Name"]: row for row in csv.DictReader(f)}
    return rows, out


def test_locust_smoke_has_no_failures(locust_run: tuple[dict[str, dict], Path]) -> None:
    rows, out = locust_run
    assert int(rows["Aggregated"]["Failure Count"]) == 0
    assert all(int(row["Failure Count"]) == 0 for row in rows.values())
    with (out / "smoke_failures.csv").open() as f:
        assert len(f.read().strip().splitlines()) == 1, "only the header"
    assert (out / "smoke.html").stat().st_size > 0


def test_every_rest_task_ran(locust_run: tuple[dict[str, dict], Path]) -> None:
    rows, _ = locust_run
    counts = {name: int(rows[name]["Request Count"]) for name in REST_TASKS if name in rows}
    assert set(counts) == REST_TASKS and all(c > 0 for c in counts.values()), counts


def test_every_grpc_task_ran(
    server: ServerThread, locust_run: tuple[dict[str, dict], Path]
) -> None:
    if not grpc_port(server):
        pytest.skip("the server has no gRPC port yet: the gRPC tasks were not run")
    rows, _ = locust_run
    counts = {name: int(rows[name]["Request Count"]) for name in GRPC_TASKS if name in rows}
    assert set(counts) == GRPC_TASKS and all(c > 0 for c in counts.values()), counts
