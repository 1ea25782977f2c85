"""Closed-loop gRPC load for the benchmark: TF Serving Predict and KServe v2 ModelInfer.

``run_grpc_load`` starts worker processes (never the server's), each running grpc.aio with
its share of the concurrency over a few channels; every worker sends one pre-serialized
request as raw bytes and reads the raw response bytes, so the client spends its CPU on gRPC,
not on protobuf. Each call's latency is recorded; any non-OK status counts as an error.

Example::

    from loadtest.grpc_clients import predict_request_bytes, run_grpc_load
    body = predict_request_bytes("mnist_dnn", "image", digits[:1] / 255.0)
    result = run_grpc_load("127.0.0.1:8500", "tfserving", body, concurrency=32, seconds=10)
    print(result.requests_per_s, result.p50_ms, result.p99_ms, result.errors)
"""

from __future__ import annotations

import asyncio
import multiprocessing
import time
from dataclasses import dataclass
from typing import Literal

import numpy as np

from loadtest.wrk import LoadResult

Kind = Literal["tfserving", "v2"]
METHODS: dict[str, str] = {
    "tfserving": "/tensorflow.serving.PredictionService/Predict",
    "v2": "/inference.GRPCInferenceService/ModelInfer",
}


@dataclass(frozen=True)
class GrpcLoadResult(LoadResult):
    """What one closed-loop gRPC run measured: ``wrk.LoadResult`` plus the client's CPU."""

    client_cpu_s: float = 0.0
    """CPU seconds the client processes used (to judge whether the client was the limit)."""


def predict_request_bytes(
    model: str, input_name: str, array: np.ndarray, signature: str = ""
) -> bytes:
    """A serialized TF Serving ``PredictRequest`` with the input in ``tensor_content``."""
    from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2
    from tensorflow_serving.apis import predict_pb2

    dtypes = {
        np.dtype(np.float32): types_pb2.DT_FLOAT,
        np.dtype(np.float64): types_pb2.DT_DOUBLE,
        np.dtype(np.int32): types_pb2.DT_INT32,
        np.dtype(np.int64): types_pb2.DT_INT64,
        np.dtype(np.uint8): types_pb2.DT_UINT8,
    }
    array = np.ascontiguousarray(array)
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model
    request.model_spec.signature_name = signature
    request.inputs[input_name].CopyFrom(
        tensor_pb2.TensorProto(
            dtype=dtypes[array.dtype],
            tensor_content=array.tobytes(),
            tensor_shape=tensor_shape_pb2.TensorShapeProto(
                dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=d) for d in array.shape]
            ),
        )
    )
    return request.SerializeToString()


def infer_request_bytes(model: str, input_name: str, array: np.ndarray) -> bytes:
    """A serialized KServe v2 ``ModelInferRequest`` with the input in raw_input_contents."""
    from service.protocols.kserve_v2.generated import grpc_predict_v2_pb2 as pb
    from service.protocols.kserve_v2.tensors import array_to_raw, datatype_of

    request = pb.ModelInferRequest(model_name=model)
    request.inputs.add(name=input_name, datatype=datatype_of(array.dtype), shape=array.shape)
    request.raw_input_contents.append(array_to_raw(array))
    return request.SerializeToString()


async def _worker_main(
    target: str,
    method: str,
    body: bytes,
    concurrency: int,
    channels: int,
    warmup_s: float,
    seconds: float,
) -> tuple[list[float], int, float, float]:
    import grpc

    options = [
        ("grpc.max_receive_message_length", 64 << 20),
        ("grpc.use_local_subchannel_pool", 1),
    ]  # one connection per channel
    opened = [grpc.aio.insecure_channel(target, options=options) for _ in range(channels)]
    calls = [chan.unary_unary(method) for chan in opened]  # bytes in, bytes out
    latencies: list[float] = []
    errors = 0
    start = time.monotonic()
    cpu_start = 0.0
    measure_from = start + warmup_s
    stop_at = measure_from + seconds

    async def loop(call: grpc.aio.UnaryUnaryMultiCallable) -> None:
        nonlocal errors
        while True:
            sent = time.monotonic()
            if sent >= stop_at:
                return
            try:
                await call(body, timeout=30)
                ok = True
            except grpc.aio.AioRpcError:
                ok = False
            done = time.monotonic()
            if sent >= measure_from:
                if ok:
                    latencies.append(done - sent)
                else:
                    errors += 1

    async def cpu_mark() -> None:
        nonlocal cpu_start
        await asyncio.sleep(warmup_s)
        cpu_start = time.process_time()

    await asyncio.gather(cpu_mark(), *(loop(calls[i % channels]) for i in range(concurrency)))
    elapsed = time.monotonic() - measure_from
    cpu = time.process_time() - cpu_start
    for chan in opened:
        await chan.close()
    return latencies, errors, elapsed, cpu


def _worker(
    target: str,
    method: str,
    body: bytes,
    concurrency: int,
    channels: int,
    warmup_s: float,
    seconds: float,
    out: multiprocessing.Queue,
) -> None:
    try:
        import uvloop

        runner = uvloop.run
    except ImportError:  # pragma: no cover
        runner = asyncio.run
    out.put(runner(_worker_main(target, method, body, concurrency, channels, warmup_s, seconds)))


def run_grpc_load(
    target: str,
    kind: Kind,
    body: bytes,
    *,
    concurrency: int,
    seconds: float,
    warmup_s: float = 1.0,
    processes: int = 1,
    channels_per_process: int = 2,
) -> GrpcLoadResult:
    """Closed-loop load: ``concurrency`` requests always in flight for ``seconds``.

    Args:
        target: ``host:port`` of the gRPC server.
        kind: ``"tfserving"`` (PredictionService/Predict) or ``"v2"`` (ModelInfer).
        body: the serialized request (``predict_request_bytes`` / ``infer_request_bytes``).
        concurrency: requests in flight at once, split over the processes.
        seconds: measured duration, after ``warmup_s`` of unmeasured load.
        processes: client processes (each one event loop).
        channels_per_process: gRPC channels (HTTP/2 connections) per process.
    """
    processes = max(1, min(processes, concurrency))
    context = multiprocessing.get_context("spawn")
    out: multiprocessing.Queue = context.Queue()
    shares = [concurrency // processes + (i < concurrency % processes) for i in range(processes)]
    workers = [
        context.Process(
            target=_worker,
            args=(
                target,
                METHODS[kind],
                body,
                share,
                max(1, min(channels_per_process, share)),
                warmup_s,
                seconds,
                out,
            ),
            daemon=True,
        )
        for share in shares
    ]
    for worker in workers:
        worker.start()
    results = [out.get(timeout=seconds + warmup_s + 120) for _ in workers]
    for worker in workers:
        worker.join(timeout=30)
    latencies = np.array([lat for lats, *_ in results for lat in lats]) * 1e3
    elapsed = max(r[2] for r in results)
    p50, p90, p99 = np.percentile(latencies, [50, 90, 99]) if latencies.size else (0, 0, 0)
    return GrpcLoadResult(
        concurrency=concurrency,
        requests=int(latencies.size),
        errors=sum(r[1] for r in results),
        seconds=elapsed,
        p50_ms=float(p50),
        p90_ms=float(p90),
        p99_ms=float(p99),
        client_cpu_s=round(sum(r[3] for r in results), 2),
    )
