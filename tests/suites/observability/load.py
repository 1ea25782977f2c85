"""A bounded closed-loop HTTP/1.1 load generator for the observability tests (loopback only).

Each of ``concurrency`` connections sends one pre-encoded POST, reads its response, and
sends the next, until the time or request budget is spent. Raw asyncio streams keep the
client's own cost small, so the server (not the client) is what the test measures. Run as
``python -m tests.suites.observability.load URL PATH BODY_FILE CONCURRENCY SECONDS`` to load from
a separate process (its own interpreter lock); it prints the result as JSON.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from urllib.parse import urlsplit


@dataclass
class LoadResult:
    """What a load run did."""

    sent: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    elapsed_s: float = 0.0

    @property
    def ok(self) -> int:
        return self.statuses.get(200, 0)


async def _run(
    url: str, path: str, body: bytes, concurrency: int, duration_s: float, max_requests: int
) -> LoadResult:
    parts = urlsplit(url)
    assert parts.hostname in ("127.0.0.1", "localhost"), url
    request = (
        f"POST {path} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    result = LoadResult()
    started = time.monotonic()
    stop_at = started + duration_s

    async def worker() -> None:
        reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
        try:
            while time.monotonic() < stop_at and result.sent < max_requests:
                result.sent += 1
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
                status = int(head.split(b" ", 2)[1])
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                await reader.readexactly(length)
                result.statuses[status] = result.statuses.get(status, 0) + 1
        finally:
            writer.close()

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    result.elapsed_s = time.monotonic() - started
    return result


def closed_loop(
    url: str,
    path: str,
    body: bytes,
    concurrency: int,
    duration_s: float,
    max_requests: int = 50_000,
) -> LoadResult:
    """Load from this process; every request is answered before it returns."""
    return asyncio.run(_run(url, path, body, concurrency, duration_s, max_requests))


def closed_loop_process(
    url: str, path: str, body: bytes, concurrency: int, duration_s: float, workdir: Path
) -> LoadResult:
    """The same load from a child interpreter (so client and server do not share a GIL)."""
    body_file = workdir / "load-body.json"
    body_file.write_bytes(body)
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.suites.observability.load",
            url,
            path,
            str(body_file),
            str(concurrency),
            str(duration_s),
        ],
        capture_output=True,
        text=True,
        timeout=duration_s + 60,
        check=True,
        cwd=Path(__file__).resolve().parents[3],
    )
    data = json.loads(completed.stdout)
    return LoadResult(
        data["sent"], {int(k): v for k, v in data["statuses"].items()}, data["elapsed_s"]
    )


if __name__ == "__main__":
    _url, _path, _body, _concurrency, _seconds = sys.argv[1:6]
    _result = closed_loop(_url, _path, Path(_body).read_bytes(), int(_concurrency), float(_seconds))
    print(json.dumps(asdict(_result)))
