"""The event loop's CPU per request, in process: the REST app called directly over ASGI.

    .venv/bin/python -m loadtest.request_cpu --requests 4000
    PYTHONPATH=../other-checkout .venv/bin/python -m loadtest.request_cpu   # another tree

Loads the shipped mnist_dnn into a real ``service.app.Server`` and drives its REST app with
``--concurrency`` closed-loop callers, with no sockets: what is measured is the server's own
work per request (middleware, routing, the adapter, JSON, validation, the core, batching,
encoding, metrics, listeners), not uvicorn's parsing or the kernel's. CPU time is a
process's own, so other processes on the machine disturb it far less than a req/s figure:
two trees are compared by running this once per tree, alternately.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from loadtest.peers import v2_json_body
from loadtest.scenarios import ROOT, mnist_digit, v2_binary_body, write_payloads
from service.process_defaults import GC_THRESHOLDS

Form = tuple[str, bytes, list[tuple[bytes, bytes]]]


def forms(work: Path) -> dict[str, Form]:
    """Body form → (path, body, extra headers)."""
    binary, header_length = v2_binary_body("image", mnist_digit())
    infer = "/v2/models/mnist_dnn/infer"
    return {
        "tfserving_json": (
            "/v1/models/mnist_dnn:predict",
            write_payloads(work)["mnist_json"].read_bytes(),
            [(b"content-type", b"application/json")],
        ),
        "v2_json": (
            infer,
            v2_json_body(work / "v2.json").read_bytes(),
            [(b"content-type", b"application/json")],
        ),
        "v2_binary": (
            infer,
            binary,
            [
                (b"content-type", b"application/octet-stream"),
                (b"inference-header-content-length", str(header_length).encode()),
            ],
        ),
    }


async def call(app: Any, form: Form) -> int:
    """One POST through the ASGI app; its status."""
    path, body, headers = form
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"127.0.0.1"),
            (b"content-length", str(len(body)).encode()),
            *headers,
        ],
        "client": ("127.0.0.1", 40000),
        "server": ("127.0.0.1", 8501),
    }
    sent = False
    status = 0
    never: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await never  # the client stays connected
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    await app(scope, receive, send)
    return status


async def drive(app: Any, form: Form, requests: int, concurrency: int) -> dict[str, float]:
    """``requests`` calls from ``concurrency`` closed-loop callers; CPU per request."""
    left = requests
    failures = 0

    async def caller() -> None:
        nonlocal left, failures
        while left > 0:
            left -= 1
            if await call(app, form) != 200:
                failures += 1

    wall, loop_cpu, process_cpu = time.monotonic(), time.thread_time(), time.process_time()
    await asyncio.gather(*(caller() for _ in range(concurrency)))
    wall = time.monotonic() - wall
    loop_cpu = time.thread_time() - loop_cpu
    process_cpu = time.process_time() - process_cpu
    return {
        "loop_us_per_request": round(loop_cpu / requests * 1e6, 1),
        "process_us_per_request": round(process_cpu / requests * 1e6, 1),
        "requests_per_s": round(requests / wall, 1),
        "failures": failures,
    }


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    from service.app import Server
    from service.config import Settings

    settings = Settings(
        model_base_path=str(Path(args.models).resolve()),
        poll_interval_s=0,
        batching={"max_queue_size": 1024},
        log_level="WARNING",
    )
    server = Server(settings)
    await server.manager.start()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            bodies = forms(Path(tmp))
        results: dict[str, Any] = {}
        for name in args.forms:
            await drive(server.rest_app, bodies[name], 300, args.concurrency)  # warm
            rounds = [
                await drive(server.rest_app, bodies[name], args.requests, args.concurrency)
                for _ in range(args.rounds)
            ]
            results[name] = {
                "rounds": rounds,
                "median_loop_us_per_request": statistics.median(
                    r["loop_us_per_request"] for r in rounds
                ),
                "median_process_us_per_request": statistics.median(
                    r["process_us_per_request"] for r in rounds
                ),
            }
        return results
    finally:
        await server.manager.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=str(ROOT / "models"))
    parser.add_argument("--forms", nargs="+", default=["tfserving_json", "v2_json", "v2_binary"])
    parser.add_argument("--requests", type=int, default=3000, help="per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    gc.set_threshold(*GC_THRESHOLDS)  # as the served process runs (process_defaults.apply)
    import uvloop

    results = uvloop.run(measure(args))
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
