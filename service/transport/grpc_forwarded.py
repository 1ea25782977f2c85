"""The server's side of the gRPC front process: start it, and answer the calls it forwards.

``GrpcFrontProcess`` spawns ``grpc_front``, hands it its settings, and serves each
forwarded call with the method handler the adapters registered, as grpc.aio would: the
request is deserialized with the handler's deserializer, the servicer method runs in a task
of its own (so its context variables are its own) with a ``ForwardedContext``, and the
reply carries the status, the details, the trailing metadata and the serialized response.
A call the client cancels is cancelled here too.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

import grpc

from service.metrics import Metrics
from service.transport.grpc_connections import PROTOCOL
from service.transport.grpc_front import FrontSettings
from service.transport.grpc_link import FrameLink, Message

logger = logging.getLogger(__name__)
STOP_MARGIN_S = 5.0
"""How long past its grace the front may take to exit before it is killed."""
RESTART_DELAY_S = 0.2
"""Wait before starting an exited front again; doubled after each failed start."""
MAX_RESTART_DELAY_S = 10.0


class ForwardedContext:
    """What a servicer method sees of a forwarded call: the ``grpc.aio.ServicerContext``
    methods the adapters use, over the metadata and deadline the front sent."""

    __slots__ = ("_deadline", "_metadata", "code", "details", "trailing_metadata")

    def __init__(self, metadata: tuple[tuple[str, Any], ...], time_remaining_s: float | None):
        self._metadata = metadata
        self._deadline = None if time_remaining_s is None else time.monotonic() + time_remaining_s
        self.code = grpc.StatusCode.OK
        self.details: str | None = None
        self.trailing_metadata: tuple[tuple[str, Any], ...] = ()

    def invocation_metadata(self) -> tuple[tuple[str, Any], ...]:
        return self._metadata

    def time_remaining(self) -> float | None:
        return None if self._deadline is None else max(0.0, self._deadline - time.monotonic())

    def set_trailing_metadata(self, metadata: Sequence[tuple[str, Any]]) -> None:
        self.trailing_metadata = tuple(metadata)

    def set_code(self, code: grpc.StatusCode) -> None:
        self.code = code

    def set_details(self, details: str) -> None:
        self.details = details

    async def abort(
        self, code: grpc.StatusCode, details: str = "", trailing_metadata: Sequence[Any] = ()
    ) -> None:
        """End the call with ``code``, as grpc.aio's ``abort``: raises ``AbortError``."""
        self.code, self.details = code, details
        if trailing_metadata:
            self.trailing_metadata = tuple(trailing_metadata)
        raise grpc.aio.AbortError(f"aborted with {code}")


class _Details:
    """The ``HandlerCallDetails`` a generic handler resolves a method from."""

    def __init__(self, method: str) -> None:
        self.method = method
        self.invocation_metadata = ()


class ForwardedCalls:
    """Answers forwarded calls with the handlers of ``generic_handlers``.

    Args:
        generic_handlers: the adapters' generic handlers, asked in order.
        send: sends one message to the front.
    """

    def __init__(
        self, generic_handlers: Sequence[grpc.GenericRpcHandler], send: Callable[[Message], None]
    ) -> None:
        self._generic = tuple(generic_handlers)
        self._handlers: dict[str, grpc.RpcMethodHandler | None] = {}
        self._tasks: dict[int, asyncio.Task[None]] = {}
        self._send = send

    def handler(self, method: str) -> grpc.RpcMethodHandler | None:
        """The unary handler of ``method`` (``/package.Service/Method``), or None."""
        if method not in self._handlers:
            found = None
            for generic in self._generic:
                found = generic.service(_Details(method))  # type: ignore[arg-type]
                if found is not None:
                    break
            unary = found is not None and not (found.request_streaming or found.response_streaming)
            self._handlers[method] = found if unary else None
        return self._handlers[method]

    def call(
        self, call_id: int, method: str, metadata: Any, remaining: float | None, payload: bytes
    ) -> None:
        """Serve one forwarded call in a task of its own."""
        task = asyncio.get_running_loop().create_task(
            self._serve(call_id, method, metadata, remaining, payload)
        )
        self._tasks[call_id] = task

    def cancel(self, call_id: int) -> None:
        task = self._tasks.get(call_id)
        if task is not None:
            task.cancel()

    async def _serve(
        self, call_id: int, method: str, metadata: Any, remaining: float | None, payload: bytes
    ) -> None:
        context = ForwardedContext(metadata, remaining)
        response = None
        try:
            handler = self.handler(method)
            if handler is None:
                context.code, context.details = grpc.StatusCode.UNIMPLEMENTED, "Method not found!"
            else:
                request = handler.request_deserializer(payload)
                result = await handler.unary_unary(request, context)
                if context.code is grpc.StatusCode.OK:
                    response = handler.response_serializer(result)
        except grpc.aio.AbortError:
            pass
        except asyncio.CancelledError:
            return  # the client cancelled: nobody waits for a reply
        except Exception as exc:  # as grpc.aio answers a handler that raised
            logger.exception("forwarded %s failed", method)
            context.code = grpc.StatusCode.UNKNOWN
            context.details = f"Unexpected {type(exc)}: {exc}"
        finally:
            self._tasks.pop(call_id, None)
        code = context.code.value[0]
        self._send(("reply", call_id, code, context.details, context.trailing_metadata, response))

    def cancel_all(self) -> None:
        for task in list(self._tasks.values()):
            task.cancel()


class GrpcFrontProcess:
    """The front process of one gRPC server, started again whenever it exits unexpectedly.

    Args:
        settings: what the front serves (``FrontSettings``).
        generic_handlers: the adapters' generic handlers, which answer forwarded calls.
        metrics: where the front's connection counts and restarts go (none when None).
    """

    def __init__(
        self,
        settings: FrontSettings,
        generic_handlers: Sequence[grpc.GenericRpcHandler],
        metrics: Metrics | None = None,
    ) -> None:
        self._settings = settings
        self._health = dict(settings.health)
        self._health_shut_down = False
        self._metrics = metrics
        self.calls = ForwardedCalls(generic_handlers, self._send)
        self._link: FrameLink | None = None
        self.process: asyncio.subprocess.Process | None = None
        self._started: asyncio.Future[int] | None = None
        self._stopping = False
        self._restarts: asyncio.Task[None] | None = None

    def _send(self, message: Message) -> None:
        if self._link is not None:
            self._link.send(message)

    def _on_message(self, message: Message) -> None:
        kind = message[0]
        if kind == "call":
            self.calls.call(*message[1:])
        elif kind == "cancel":
            self.calls.cancel(message[1])
        elif kind == "open_connections" and self._metrics is not None:
            self._metrics.open_connections.labels(PROTOCOL).set(message[1])
        elif kind == "connection_closed" and self._metrics is not None:
            self._metrics.connections_closed.labels(PROTOCOL, message[1]).inc()
        elif kind == "started" and self._started is not None and not self._started.done():
            self._started.set_result(message[1])
        elif kind == "failed" and self._started is not None and not self._started.done():
            self._started.set_exception(OSError(message[1]))

    def _on_lost(self) -> None:
        self.calls.cancel_all()  # their front has gone, and their clients' connections
        if self._started is not None and not self._started.done():
            self._started.set_exception(OSError("the gRPC front process exited at start"))
        elif not self._stopping:
            logger.error("the gRPC front process exited; starting it again")
            self._restarts = asyncio.get_running_loop().create_task(self._restart())

    async def start(self) -> int:
        """Spawn the front and wait until it listens; returns the bound port."""
        port = await self._spawn(self._settings)
        host = self._settings.address.rsplit(":", 1)[0]
        self._settings = replace(self._settings, address=f"{host}:{port}")
        return port

    async def _spawn(self, settings: FrontSettings) -> int:
        loop = asyncio.get_running_loop()
        ours, theirs = socket.socketpair()
        try:
            self.process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "service.transport.grpc_front",
                str(theirs.fileno()),
                pass_fds=(theirs.fileno(),),
            )
        finally:
            theirs.close()
        self._link = FrameLink(self._on_message, self._on_lost)
        await loop.connect_accepted_socket(lambda: self._link, ours)
        self._started = loop.create_future()
        self._link.send(("init", settings))
        if self._health_shut_down:
            self._link.send(("shutdown",))
        try:
            return await self._started
        except OSError:
            await self._reap(STOP_MARGIN_S)
            raise

    async def _restart(self) -> None:
        """Start the front again on the same port, backing off while that fails."""
        await self._reap(STOP_MARGIN_S)
        delay_s = RESTART_DELAY_S
        while not self._stopping:
            await asyncio.sleep(delay_s)
            if self._stopping:
                return
            try:
                await self._spawn(replace(self._settings, health=dict(self._health)))
            except OSError as exc:
                logger.error("the gRPC front process did not start again: %s", exc)
                delay_s = min(2 * delay_s, MAX_RESTART_DELAY_S)
                continue
            if self._metrics is not None:
                self._metrics.grpc_front_restarts.inc()
            logger.warning("the gRPC front process serves again")
            return

    def publish_health(self, service: str, status: int) -> None:
        """Tell the front's health ``Watch`` streams a service's new status."""
        self._health[service] = status
        self._send(("health", service, status))

    def shutdown_health(self) -> None:
        """Every status NOT_SERVING for good, in this front and any later one."""
        self._health_shut_down = True
        self._send(("shutdown",))

    async def stop(self, grace_s: float) -> None:
        """Refuse new calls, let running ones finish for ``grace_s``, then end the front."""
        self._stopping = True
        if self._restarts is not None:
            self._restarts.cancel()
        self._send(("stop", grace_s))
        await self._reap(grace_s + STOP_MARGIN_S)

    async def _reap(self, timeout_s: float) -> None:
        """Wait for the front to exit (killing it after ``timeout_s``); close its link."""
        process = self.process
        if process is not None:
            try:
                await asyncio.wait_for(process.wait(), timeout_s)
            except TimeoutError:
                logger.error("the gRPC front process did not stop in time; killing it")
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await process.wait()
        if self._link is not None:
            self._link.close()
