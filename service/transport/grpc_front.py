"""The gRPC front process: grpc.aio in a process of its own, forwarding calls to the server.

grpc.aio costs the event loop it runs on some 60-75 µs per unary call before any of the
server's own work (docs/performance.md), on the one thread that also parses every REST
request and runs the batcher. Here it runs in a child process with its own loop and core:
HTTP/2, TLS, the bearer token, message limits, keepalive, connection caps and idle and age
limits all stay in grpc core as they were, and every unary call (of every service but
reflection, and health's ``Check``) is passed to the server process over a private
socketpair (``grpc_link``), where the same servicers answer it (``grpc_forwarded``). Health
``Watch`` streams and server reflection are answered here: the server pushes each health
status as it changes, and hands over the descriptors reflection describes.

Messages, server → front: ``("init", settings)``, ``("reply", id, code, details,
trailing_metadata, payload)``, ``("health", service, status)``, ``("shutdown",)`` (every
status NOT_SERVING for good), ``("stop", grace_s)``.
Front → server: ``("started", port)`` or ``("failed", reason)``, ``("call", id, method,
metadata, time_remaining_s, payload)``, ``("cancel", id)``, ``("open_connections", n)``,
``("connection_closed", limit)``.

The front never imports TensorFlow. It exits when its link closes, so it cannot outlive
the server.

Run as ``python -m service.transport.grpc_front <fd>``, by ``grpc_forwarded`` only.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import logging
import socket
import sys
from dataclasses import dataclass
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2_grpc

from service.transport.grpc_connections import GrpcConnectionSampler, channelz_server_ids
from service.transport.grpc_link import FrameLink, Message
from service.transport.grpc_options import auth_interceptors, enable_reflection, listen

logger = logging.getLogger(__name__)
STATUS_BY_CODE = {status.value[0]: status for status in grpc.StatusCode}


@dataclass(frozen=True)
class FrontSettings:
    """What the front needs to serve, sent by the server in its ``init`` message.

    Attributes:
        address: ``host:port`` to listen on (port 0 picks one).
        options: grpc server channel arguments (``grpc_options.server_options``).
        forwarded: full paths of the unary methods passed to the server.
        reflected: service names server reflection lists.
        descriptors: serialized ``FileDescriptorProto`` s, imports before importers.
        health: every service's health status at start (``Watch`` streams' first answer).
        tls_files: (certificate, key) paths, or None for plaintext.
        auth_token: the bearer token every method but health checks needs, or None.
        connection_metrics: sample channelz with (idle_s, age_s), or None.
        log_level: the server's log level.
    """

    address: str
    options: list[tuple[str, Any]]
    forwarded: list[str]
    reflected: list[str]
    descriptors: list[bytes]
    health: dict[str, int]
    tls_files: tuple[str, str] | None = None
    auth_token: str | None = None
    connection_metrics: tuple[float, float] | None = None
    log_level: str = "WARNING"


class _SentGauge:
    def __init__(self, send: Any) -> None:
        self._send = send

    def set(self, value: float) -> None:
        self._send(("open_connections", int(value)))


class _SentCounter:
    def __init__(self, send: Any, limit: str) -> None:
        self._send, self._limit = send, limit

    def inc(self, amount: float = 1) -> None:
        self._send(("connection_closed", self._limit))


class _Labelled:
    def __init__(self, make: Any) -> None:
        self._make = make

    def labels(self, *values: str) -> Any:
        return self._make(*values)


class SentConnectionMetrics:
    """The two metrics ``GrpcConnectionSampler`` writes, sent to the server from any thread."""

    def __init__(self, link: FrameLink, loop: asyncio.AbstractEventLoop) -> None:
        def send(message: Message) -> None:
            loop.call_soon_threadsafe(link.send, message)

        self.open_connections = _Labelled(lambda protocol: _SentGauge(send))
        self.connections_closed = _Labelled(lambda protocol, limit: _SentCounter(send, limit))


class _Forwarding(grpc.GenericRpcHandler):
    """One handler per forwarded method, each taking and giving raw bytes."""

    def __init__(self, forward: Any, methods: list[str]) -> None:
        self._handlers = {
            method: grpc.unary_unary_rpc_method_handler(functools.partial(forward, method))
            for method in methods
        }

    def service(self, handler_call_details: grpc.HandlerCallDetails) -> Any:
        return self._handlers.get(handler_call_details.method)


class GrpcFront:
    """The front's state: its link, its server and the calls waiting for replies."""

    def __init__(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._calls: dict[int, asyncio.Future[tuple[Any, ...]]] = {}
        self._ids = itertools.count()
        self._health = health.aio.HealthServicer()
        self._init: asyncio.Future[FrontSettings] = self._loop.create_future()
        self._stop: asyncio.Future[float] = self._loop.create_future()
        self.link = FrameLink(self._on_message, self._on_lost)

    def _on_message(self, message: Message) -> None:
        kind = message[0]
        if kind == "reply":
            reply = self._calls.get(message[1])
            if reply is not None and not reply.done():
                reply.set_result(message[2:])
        elif kind == "health":
            self._loop.create_task(self._health.set(message[1], message[2]))
        elif kind == "shutdown":
            self._loop.create_task(self._health.enter_graceful_shutdown())
        elif kind == "init":
            self._init.set_result(message[1])
        elif kind == "stop" and not self._stop.done():
            self._stop.set_result(message[1])

    def _on_lost(self) -> None:
        """The server has gone: stop at once, failing the calls still waiting."""
        for reply in self._calls.values():
            if not reply.done():
                reply.set_result((grpc.StatusCode.UNAVAILABLE.value[0], "server gone", (), None))
        if not self._stop.done():
            self._stop.set_result(0.0)
        if not self._init.done():
            self._init.cancel()

    async def forward(self, method: str, request: bytes, context: grpc.aio.ServicerContext) -> Any:
        """Pass one call to the server and answer with what it replies."""
        call_id = next(self._ids)
        reply = self._loop.create_future()
        self._calls[call_id] = reply
        metadata = tuple((key, value) for key, value in context.invocation_metadata() or ())
        self.link.send(("call", call_id, method, metadata, context.time_remaining(), request))
        try:
            code, details, trailing, payload = await reply
        except asyncio.CancelledError:
            self.link.send(("cancel", call_id))
            raise
        finally:
            del self._calls[call_id]
        if trailing:
            context.set_trailing_metadata(trailing)
        if code:
            await context.abort(STATUS_BY_CODE[code], details or "")
        return payload

    def _server(self, settings: FrontSettings) -> grpc.aio.Server:
        server = grpc.aio.server(
            options=settings.options, interceptors=auth_interceptors(settings.auth_token)
        )
        server.add_generic_rpc_handlers((_Forwarding(self.forward, settings.forwarded),))
        health_pb2_grpc.add_HealthServicer_to_server(self._health, server)
        enable_reflection(server, settings.reflected, settings.descriptors)
        return server

    async def run(self) -> None:
        """Serve from the ``init`` message until ``stop`` (or the server's going)."""
        try:
            settings = await self._init
        except asyncio.CancelledError:
            return
        logging.basicConfig(level=settings.log_level, stream=sys.stderr)
        for service, status in settings.health.items():
            await self._health.set(service, status)
        server = self._server(settings)
        try:
            port = listen(server, settings.address, settings.tls_files)
        except OSError as exc:
            self.link.send(("failed", str(exc)))
            return
        await server.start()
        sampler = self._sampler(settings)
        self.link.send(("started", port))
        grace_s = await self._stop
        if sampler is not None:
            sampler.stop()
        await server.stop(grace_s)

    def _sampler(self, settings: FrontSettings) -> GrpcConnectionSampler | None:
        if settings.connection_metrics is None:
            return None
        servers = channelz_server_ids()
        if len(servers) != 1:
            logger.warning("gRPC connection metrics off: cannot tell this server in channelz")
            return None
        idle_s, age_s = settings.connection_metrics
        metrics = SentConnectionMetrics(self.link, self._loop)
        sampler = GrpcConnectionSampler(servers.pop(), idle_s, age_s, metrics)  # type: ignore[arg-type]
        sampler.start()
        return sampler


async def main(fd: int) -> None:
    """Serve over the link on descriptor ``fd`` until told to stop."""
    front = GrpcFront()
    link_socket = socket.socket(fileno=fd)
    await asyncio.get_running_loop().connect_accepted_socket(lambda: front.link, link_socket)
    try:
        await front.run()
    finally:
        front.link.close()


if __name__ == "__main__":
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        asyncio.run(main(int(sys.argv[1])))
    else:
        uvloop.run(main(int(sys.argv[1])))
