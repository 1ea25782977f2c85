"""The gRPC server: grpc.aio, serving every gRPC adapter, in a front process or inline.

Where a core is free beside the event loop (``grpc_front_process: auto``, the default) or
when asked, grpc core and grpc.aio run in a front process that forwards each unary call here
(``grpc_front``, ``grpc_forwarded``); else they run on the server's own event loop.

The adapters' services (``service.app`` hands them in: TF Serving's ``PredictionService``
and ``ModelService``, KServe v2's ``inference.GRPCInferenceService``), plus
``grpc.health.v1.Health`` and server reflection, all on one port. Message size limits come
from the settings; gRPC itself answers RESOURCE_EXHAUSTED for a message beyond them. With
``tls_cert_file``/``tls_key_file`` the port speaks TLS only; with ``auth_token`` a
bearer-token interceptor guards every method but health checks (``service.transport.auth``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf.descriptor import FileDescriptor
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection, reflection_pb2

from service.config import Settings
from service.inference.core import InferenceCore
from service.metrics import Metrics
from service.transport.cpus import front_pays_off
from service.transport.grpc_connections import LIMITS as GRPC_LIMITS
from service.transport.grpc_connections import PROTOCOL as GRPC_PROTOCOL
from service.transport.grpc_connections import GrpcConnectionSampler, channelz_server_ids
from service.transport.grpc_forwarded import GrpcFrontProcess
from service.transport.grpc_front import FrontSettings
from service.transport.grpc_health import ServingHealth
from service.transport.grpc_options import (
    auth_interceptors,
    descriptor_files,
    enable_reflection,
    listen,
    server_options,
    tls_files,
)

logger = logging.getLogger(__name__)
HEALTH_SERVICE = health_pb2.DESCRIPTOR.services_by_name["Health"].full_name
REFLECTION_SERVICE = reflection.SERVICE_NAME


def unary_methods(files: Iterable[FileDescriptor], services: Iterable[str]) -> list[str]:
    """Full paths (``/package.Service/Method``) of the unary methods of ``services``."""
    methods = []
    for file in files:
        for service in file.services_by_name.values():
            if service.full_name not in services:
                continue
            for method in service.methods:
                if not (method.client_streaming or method.server_streaming):
                    methods.append(f"/{service.full_name}/{method.name}")
    return methods


class GenericHandlersOnly:
    """A stand-in server for generated ``add_*Servicer_to_server`` functions that keeps only
    their generic handler.

    Newer generated code also registers every method with ``add_registered_method_handlers``.
    grpc.aio's accept loop then keeps one pending call future per registered method and waits
    on all of them (``asyncio.wait``) for every incoming call, so each registered method adds
    cost to every call of every service: with KServe v2's and health's 13 methods that was
    8.3 µs per call against 4.9 µs for the single generic future. Methods resolve through the
    generic handlers instead, as TF Serving's older generated code does anyway. Without a
    server it only collects the handlers (for ``grpc_forwarded``).
    """

    def __init__(self, server: grpc.aio.Server | None = None) -> None:
        self._server = server
        self.handlers: list[grpc.GenericRpcHandler] = []

    def add_generic_rpc_handlers(self, handlers: Iterable[grpc.GenericRpcHandler]) -> None:
        self.handlers.extend(handlers)
        if self._server is not None:
            self._server.add_generic_rpc_handlers(tuple(handlers))

    def add_registered_method_handlers(self, service: str, handlers: dict[str, Any]) -> None:
        """Dropped: the same handlers arrive through ``add_generic_rpc_handlers``."""


@dataclass(frozen=True)
class GrpcService:
    """One gRPC service an adapter provides.

    Attributes:
        add_to_server: the generated ``add_<Service>Servicer_to_server`` function.
        servicer: the adapter's servicer.
        name: the full service name, e.g. ``tensorflow.serving.PredictionService``.
        descriptor: the proto file that declares it (for server reflection).
    """

    add_to_server: Callable[[Any, Any], None]
    servicer: Any
    name: str
    descriptor: FileDescriptor


class GrpcServer:
    """Every gRPC service of the server on one grpc.aio server.

    Args:
        settings: host, port and message size limits.
        services: the adapters' services (``service.app`` builds them).
        core: the inference core (health checking reads its models).
        is_ready: the server's readiness (False while loading or draining).
        metrics: where open and closed connections are counted (none when None).
    """

    def __init__(
        self,
        settings: Settings,
        services: Sequence[GrpcService],
        core: InferenceCore,
        is_ready: Callable[[], bool],
        metrics: Metrics | None = None,
    ) -> None:
        self._settings = settings
        self._metrics = metrics
        self._server: grpc.aio.Server | None = None
        self._front: GrpcFrontProcess | None = None
        self.connections: GrpcConnectionSampler | None = None
        self.port = settings.grpc_port
        self._services = tuple(services)
        self.health = ServingHealth(core, is_ready, [service.name for service in services])

    def _descriptors(self) -> list[FileDescriptor]:
        return [
            *(service.descriptor for service in self._services),
            health_pb2.DESCRIPTOR,
            reflection_pb2.DESCRIPTOR,
        ]

    async def start(self) -> int:
        """Bind and start; returns the bound port (useful when the setting is 0)."""
        names = [service.name for service in self._services]
        names += [HEALTH_SERVICE, REFLECTION_SERVICE]
        address = f"{self._settings.host}:{self._settings.grpc_port}"
        await self.health.refresh()
        front = self._settings.grpc_front_process
        if front is True or (front == "auto" and front_pays_off()):
            port = await self._start_front(address, names)
        else:
            port = await self._start_inline(address, names)
        self.health.start()
        self.port = port
        logger.info("gRPC on %s:%d: %s", self._settings.host, port, ", ".join(sorted(names)))
        return port

    async def _start_front(self, address: str, names: list[str]) -> int:
        """gRPC in the front process, calls answered here (``grpc_forwarded``)."""
        settings = self._settings
        handlers = GenericHandlersOnly()
        for service in self._services:
            service.add_to_server(service.servicer, handlers)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, handlers)
        token = settings.auth_token
        sample = self._metrics is not None and settings.grpc_connection_metrics
        # every adapter's unary methods and health's Check; Watch and reflection stay there
        forwarded = [*(service.name for service in self._services), HEALTH_SERVICE]
        front_settings = FrontSettings(
            address=address,
            options=server_options(settings),
            forwarded=unary_methods(self._descriptors(), forwarded),
            reflected=names,
            descriptors=descriptor_files(self._descriptors()),
            health=dict(self.health.statuses),
            tls_files=tls_files(settings),
            auth_token=None if token is None else token.get_secret_value(),
            connection_metrics=(
                (settings.grpc_max_connection_idle_s, settings.grpc_max_connection_age_s)
                if sample
                else None
            ),
            log_level=logging.getLevelName(logging.getLogger().getEffectiveLevel()),
        )
        if sample and self._metrics is not None:  # every series exported from the start
            self._metrics.open_connections.labels(GRPC_PROTOCOL).set(0)
            for limit in GRPC_LIMITS:
                self._metrics.connections_closed.labels(GRPC_PROTOCOL, limit)
        front = GrpcFrontProcess(front_settings, handlers.handlers, self._metrics)
        port = await front.start()
        self.health.mirror = front
        self._front = front
        return port

    async def _start_inline(self, address: str, names: list[str]) -> int:
        """grpc.aio on this process's event loop."""
        servers_before = channelz_server_ids()
        settings = self._settings
        token = settings.auth_token
        server = grpc.aio.server(
            options=server_options(settings),
            interceptors=auth_interceptors(None if token is None else token.get_secret_value()),
        )
        generic_only = GenericHandlersOnly(server)
        for service in self._services:
            service.add_to_server(service.servicer, generic_only)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, generic_only)
        enable_reflection(server, names, descriptor_files(self._descriptors()))
        port = listen(server, address, tls_files(settings))
        await server.start()
        self._server = server
        self._start_connection_sampler(channelz_server_ids() - servers_before)
        return port

    def _start_connection_sampler(self, new_servers: set[int]) -> None:
        """Sample this server's connections, found as the one channelz server it added."""
        settings = self._settings
        if self._metrics is None or not settings.grpc_connection_metrics:
            return
        if len(new_servers) != 1:  # another server started meanwhile in this process
            logger.warning("gRPC connection metrics off: cannot tell this server in channelz")
            return
        self.connections = GrpcConnectionSampler(
            new_servers.pop(),
            settings.grpc_max_connection_idle_s,
            settings.grpc_max_connection_age_s,
            self._metrics,
        )
        self.connections.start()

    async def stop(self, grace_s: float) -> None:
        """Report NOT_SERVING, refuse new calls and let running calls finish for ``grace_s``."""
        await self.health.shutdown()
        if self.connections is not None:
            self.connections.stop()
        if self._server is not None:
            await self._server.stop(grace_s)
        if self._front is not None:
            await self._front.stop(grace_s)
            if self._metrics is not None and self._settings.grpc_connection_metrics:
                self._metrics.open_connections.labels(GRPC_PROTOCOL).set(0)
        if self.connections is not None:
            self.connections.server_stopped()
