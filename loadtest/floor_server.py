"""The protocol floor: primer-serve's REST and gRPC stacks answering without doing any work.

The same stacks as ``primer-serve`` on one uvloop event loop: uvicorn with httptools for REST,
grpc.aio for gRPC, with the server's own channel arguments. Every request is answered at once
with a fixed reply: the body or message is received but not parsed, and there is no core,
batching or model. ``make bench`` drives it with the same load generators and payloads as
the served runs. The floors then compare the two stacks themselves, and served req/s ÷ floor
req/s shows how much of a protocol's ceiling the inference work leaves.

    python -m loadtest.floor_server --rest-port 8601 --grpc-port 8600
"""

from __future__ import annotations

import argparse

import grpc
import uvicorn
import uvloop
from starlette.types import Receive, Scope, Send

from service.config import Settings
from service.transport.grpc_options import server_options

REST_REPLY = b'{"predictions": [[0.0]]}'
REST_HEADERS = [
    (b"content-type", b"application/json"),
    (b"content-length", str(len(REST_REPLY)).encode()),
]


async def rest_app(scope: Scope, receive: Receive, send: Send) -> None:
    """Receive the whole body, then answer 200 with a fixed JSON body."""
    if scope["type"] != "http":
        return
    more_body = True
    while more_body:
        more_body = (await receive()).get("more_body", False)
    await send({"type": "http.response.start", "status": 200, "headers": REST_HEADERS})
    await send({"type": "http.response.body", "body": REST_REPLY})


async def _empty_reply(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
    return b""  # an empty message: valid for every response type


class AnyUnaryMethod(grpc.GenericRpcHandler):
    """Serves every method as unary-unary with an empty reply (messages stay bytes)."""

    def service(self, handler_call_details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler:
        return grpc.unary_unary_rpc_method_handler(_empty_reply)


async def serve(host: str, rest_port: int, grpc_port: int) -> None:
    """Serve both protocols until SIGTERM or SIGINT (uvicorn's handlers end the REST server)."""
    grpc_server = grpc.aio.server(options=server_options(Settings()))
    grpc_server.add_generic_rpc_handlers((AnyUnaryMethod(),))
    if grpc_server.add_insecure_port(f"{host}:{grpc_port}") == 0:
        raise OSError(f"cannot listen for gRPC on {host}:{grpc_port}")
    await grpc_server.start()
    # primer-serve's uvicorn settings that shape its per-request cost
    config = uvicorn.Config(
        rest_app,
        host=host,
        port=rest_port,
        http="httptools",
        loop="none",
        lifespan="off",
        access_log=False,
        log_level="warning",
        backlog=2048,
    )
    try:
        await uvicorn.Server(config).serve()
    finally:
        await grpc_server.stop(0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--rest-port", type=int, required=True)
    parser.add_argument("--grpc-port", type=int, required=True)
    args = parser.parse_args(argv)
    uvloop.run(serve(args.host, args.rest_port, args.grpc_port))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
