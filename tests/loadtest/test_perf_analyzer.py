"""Triton's perf_analyzer drives all three endpoints; its counts match the server's metrics.

Slow (about a minute); it runs with `make test-slow`, whose set-up step unpacks
perf_analyzer first (`loadtest/perf_analyzer.sh --install-only`), so the test downloads
nothing. `make perf-analyzer` runs the same script with longer windows.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.slow


def test_perf_analyzer_counts_match_server_metrics() -> None:
    installed = REPO_ROOT / "build" / "perf_analyzer" / "bin" / "perf_analyzer"
    assert installed.exists(), "run `make test-slow` (its set-up unpacks perf_analyzer)"
    env = {**os.environ, "PYTHON": sys.executable, "WINDOW_MS": "2000", "CONCURRENCY": "8"}
    result = subprocess.run(
        ["bash", str(REPO_ROOT / "loadtest" / "perf_analyzer.sh")],
        capture_output=True,
        text=True,
        timeout=900,
        env=env,
        cwd=REPO_ROOT,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    for case in ("v2_grpc:", "v2_http:", "tfserving_grpc:"):
        assert case in result.stdout
    assert "request counts match the server's metrics" in result.stdout
