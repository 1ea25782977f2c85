"""Overload figure: offered load of 5x capacity on a model-bound server, REST and gRPC.

Phases, per protocol, against one running server:

1. capacity — closed loop with ``2 x max_batch_size`` requests in flight: the at-capacity
   throughput and p99 (no request is refused at this concurrency);
2. overload — open loop at ``factor x`` that throughput: every answer is either served or
   refused (429 / RESOURCE_EXHAUSTED); p99 of each;
3. recovery — the closed loop again: throughput must be back to normal.

The client runs in its own process (asyncio + uvloop) so it never shares the server's GIL;
REST requests go over a minimal keep-alive HTTP/1.1 client (cheap enough for a 2-core box),
gRPC ones through grpc.aio with pre-serialized bytes.

Example: ``python -m loadtest.overload --rest 127.0.0.1:8501 --grpc 127.0.0.1:8500
--model heavy --input x --width 4 --batch 4``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np


@dataclass
class Phase:
    """What one phase measured (latencies in milliseconds)."""

    name: str
    seconds: float
    offered_per_s: float
    ok: int
    refused: int
    errors: int
    ok_p50_ms: float
    ok_p99_ms: float
    refused_p99_ms: float

    @property
    def ok_per_s(self) -> float:
        return self.ok / self.seconds if self.seconds else 0.0


class RawHttp:
    """Keep-alive HTTP/1.1 POSTs of one fixed request over a pool of connections."""

    def __init__(self, host: str, port: int, path: str, body: bytes) -> None:
        self._host, self._port = host, port
        self._request = (
            f"POST {path} HTTP/1.1\r\nHost: {host}\r\n"
            "Content-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode() + body
        self._idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []

    async def post(self) -> int:
        """Send the request; return the HTTP status (the body is read and dropped)."""
        if self._idle:
            reader, writer = self._idle.pop()
        else:
            reader, writer = await asyncio.open_connection(self._host, self._port)
        writer.write(self._request)
        head = await reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        for line in head.split(b"\r\n"):
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        await reader.readexactly(length)
        if b"connection: close" in head.lower():
            writer.close()
        else:
            self._idle.append((reader, writer))
        return status

    def close(self) -> None:
        for _, writer in self._idle:
            writer.close()


def _percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) * 1e3 if values else 0.0


async def _run(
    target: dict[str, Any], plan: list[tuple[str, str, float, float]]
) -> list[dict[str, Any]]:
    import grpc

    if target["kind"] == "rest":
        host, port = target["address"].rsplit(":", 1)
        client = RawHttp(host, int(port), target["path"], target["body"])

        async def call() -> str:
            status = await client.post()
            return "ok" if status == 200 else "refused" if status == 429 else f"http {status}"
    else:
        channel = grpc.aio.insecure_channel(target["address"])
        method = channel.unary_unary(target["method"])

        async def call() -> str:
            try:
                await method(target["body"], timeout=30)
                return "ok"
            except grpc.aio.AioRpcError as exc:
                if exc.code() is grpc.StatusCode.RESOURCE_EXHAUSTED:
                    return "refused"
                return exc.code().name

    results = [await _phase(call, *step) for step in plan]
    if target["kind"] == "rest":
        client.close()
    else:
        await channel.close()
    return results


async def _phase(
    call: Callable[[], Awaitable[str]], name: str, mode: str, amount: float, seconds: float
) -> dict[str, Any]:
    """One phase: closed loop (``amount`` in flight) or open loop (``amount`` per second)."""
    latencies: dict[str, list[float]] = {"ok": [], "refused": []}
    errors: list[str] = []

    async def one() -> None:
        sent = time.monotonic()
        try:
            outcome = await call()
        except Exception as exc:  # a broken connection counts as an error
            outcome = type(exc).__name__
        if outcome in latencies:
            latencies[outcome].append(time.monotonic() - sent)
        else:
            errors.append(outcome)

    started = time.monotonic()
    stop_at = started + seconds
    if mode == "closed":

        async def loop() -> None:
            while time.monotonic() < stop_at:
                await one()

        await asyncio.gather(*(loop() for _ in range(int(amount))))
    else:  # open loop: one request every 1/amount seconds, whatever the answers
        tasks = []
        for i in range(int(seconds * amount)):
            delay = started + i / amount - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.ensure_future(one()))
        await asyncio.gather(*tasks)
    elapsed = time.monotonic() - started
    return asdict(
        Phase(
            name=name,
            seconds=elapsed,
            offered_per_s=amount if mode == "open" else 0.0,
            ok=len(latencies["ok"]),
            refused=len(latencies["refused"]),
            errors=len(errors),
            ok_p50_ms=_percentile(latencies["ok"], 50),
            ok_p99_ms=_percentile(latencies["ok"], 99),
            refused_p99_ms=_percentile(latencies["refused"], 99),
        )
    ) | {"error_kinds": sorted(set(errors))[:5]}


def _phases_worker(
    target: dict[str, Any], plan: list[tuple[str, str, float, float]], out: multiprocessing.Queue
) -> None:
    import uvloop

    out.put(uvloop.run(_run(target, plan)))


def run_phases(
    target: dict[str, Any], plan: list[tuple[str, str, float, float]]
) -> list[dict[str, Any]]:
    """Run ``plan`` (name, "closed"|"open", concurrency|rate, seconds) in a client process."""
    context = multiprocessing.get_context("spawn")
    out: multiprocessing.Queue = context.Queue()
    worker = context.Process(target=_phases_worker, args=(target, plan, out), daemon=True)
    worker.start()
    results = out.get(timeout=sum(p[3] for p in plan) + 120)
    worker.join(timeout=30)
    return results


def overload_figure(
    target: dict[str, Any],
    concurrency: int,
    factor: float = 5.0,
    capacity_s: float = 5.0,
    overload_s: float = 6.0,
    recovery_s: float = 4.0,
) -> dict[str, Any]:
    """Capacity, then ``factor`` x capacity open loop, then recovery, for one target."""
    _, capacity = run_phases(
        target,
        [("warm-up", "closed", concurrency, 1.0), ("capacity", "closed", concurrency, capacity_s)],
    )
    rate = factor * capacity["ok"] / capacity["seconds"]
    overload, recovery = run_phases(
        target,
        [("overload", "open", rate, overload_s), ("recovery", "closed", concurrency, recovery_s)],
    )
    return {"capacity": capacity, "overload": overload, "recovery": recovery}


def targets(
    rest: str | None, grpc_address: str | None, model: str, input_name: str, width: int
) -> dict[str, dict[str, Any]]:
    """REST (TF Serving predict) and gRPC (TF Serving Predict) targets for one row input."""
    from loadtest.grpc_clients import METHODS, predict_request_bytes

    row = np.ones((1, width), np.float32)
    found = {}
    if rest:
        body = json.dumps({"instances": row.tolist()}).encode()
        found["rest"] = {
            "kind": "rest",
            "address": rest,
            "body": body,
            "path": f"/v1/models/{model}:predict",
        }
    if grpc_address:
        found["grpc"] = {
            "kind": "grpc",
            "address": grpc_address,
            "method": METHODS["tfserving"],
            "body": predict_request_bytes(model, input_name, row),
        }
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rest", help="host:port of the REST server")
    parser.add_argument("--grpc", help="host:port of the gRPC server")
    parser.add_argument("--model", default="heavy")
    parser.add_argument("--input", default="x")
    parser.add_argument("--width", type=int, default=4, help="row width of the input")
    parser.add_argument("--batch", type=int, default=4, help="the model's max_batch_size")
    parser.add_argument("--factor", type=float, default=5.0)
    args = parser.parse_args()
    for name, target in targets(args.rest, args.grpc, args.model, args.input, args.width).items():
        figure = overload_figure(target, 2 * args.batch, args.factor)
        print(name, json.dumps(figure, indent=1))


if __name__ == "__main__":
    main()
