"""Closed-loop HTTP load with wrk (a C client that costs little CPU) and a Lua script."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

SCRIPT = Path(__file__).with_name("wrk_post.lua")


@dataclass(frozen=True)
class LoadResult:
    """What one closed-loop run measured."""

    concurrency: int
    requests: int
    errors: int
    seconds: float
    p50_ms: float
    p90_ms: float
    p99_ms: float

    @property
    def requests_per_s(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def to_dict(self) -> dict[str, float]:
        return {**asdict(self), "requests_per_s": round(self.requests_per_s, 1)}


def require_wrk() -> str:
    path = shutil.which("wrk")
    if path is None:
        raise SystemExit("wrk is not installed: run `make deps-system` (apt-get install wrk)")
    return path


def run_wrk(
    url: str,
    body_file: Path,
    *,
    concurrency: int,
    seconds: float,
    content_type: str = "application/json",
    headers: Mapping[str, str] | None = None,
    threads: int = 1,
) -> LoadResult:
    """POST ``body_file`` (with ``headers``) to ``url`` from ``concurrency`` connections for
    ``seconds``."""
    command = [
        require_wrk(),
        f"-t{min(threads, concurrency)}",
        f"-c{concurrency}",
        f"-d{max(1, round(seconds))}s",
        "--timeout",
        "30s",
        "-s",
        str(SCRIPT),
        url,
    ]
    env = {
        "BODY_FILE": str(body_file),
        "CONTENT_TYPE": content_type,
        "PATH": "/usr/bin:/bin",
        "EXTRA_HEADERS": "\n".join(f"{name}: {value}" for name, value in (headers or {}).items()),
    }
    completed = subprocess.run(
        command, capture_output=True, text=True, env=env, timeout=seconds + 60, check=True
    )
    line = next(line for line in completed.stdout.splitlines() if line.startswith("WRK_JSON "))
    data = json.loads(line.removeprefix("WRK_JSON "))
    return LoadResult(
        concurrency=concurrency,
        requests=data["requests"],
        errors=data["socket_errors"] + data["non_2xx"],
        seconds=data["duration_us"] / 1e6,
        p50_ms=data["p50_us"] / 1e3,
        p90_ms=data["p90_us"] / 1e3,
        p99_ms=data["p99_us"] / 1e3,
    )
