"""The gRPC server: grpc.aio on the server's event loop, serving every gRPC adapter.

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
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import descriptor_pool
from google.protobuf.descriptor import FileDescriptor
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection, reflection_pb2

from service.config import Settings
from service.inference.core import InferenceCore
from service.metrics import Metrics
from service.transport.auth import BearerAuthInterceptor
from service.transport.grpc_connections import GrpcConnectionSampler, channelz_server_ids
from service.transport.grpc_health import ServingHealth
from service.transport.grpc_options import server_options

logger = logging.getLogger(__name__)
HEALTH_SERVICE = health_pb2.DESCRIPTOR.services_by_name["Health"].full_name
REFLECTION_SERVICE = reflection.SERVICE_NAME


def reflection_pool(files: Iterable[FileDescriptor]) -> descriptor_pool.DescriptorPool:
    """One descriptor pool holding ``files`` and their imports, for server reflection.

    The KServe v2 messages live in a private pool (see ``tools/generate_protos.sh``), so the
    default pool alone cannot describe every service.
    """
    pool = descriptor_pool.DescriptorPool()
    added: set[str] = set()

    def add(file: FileDescriptor) -> None:
        if file.name in added:
            return
        for dependency in file.dependencies:
            add(dependency)
        pool.AddSerializedFile(file.serialized_pb)
        added.add(file.name)

    for file in files:
        add(file)
    return pool


class GenericHandlersOnly:
    """A stand-in server for generated ``add_*Servicer_to_server`` functions that keeps only
    their generic handler.

    Newer generated code also registers every method with ``add_registered_method_handlers``.
    grpc.aio's accept loop then keeps one pending call future per registered method and waits
    on all of them (``asyncio.wait``) for every incoming call, so each registered method adds
    cost to every call of every service: with KServe v2's and health's 13 methods that was
    8.3 µs per call against 4.9 µs for the single generic future. Methods resolve through the
    generic handlers instead, as TF Serving's older generated code does anyway.
    """

    def __init__(self, server: grpc.aio.Server) -> None:
        self._server = server

    def add_generic_rpc_handlers(self, handlers: Iterable[grpc.GenericRpcHandler]) -> None:
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
        self.connections: GrpcConnectionSampler | None = None
        self.port = settings.grpc_port
        self._services = tuple(services)
        self.health = ServingHealth(core, is_ready, [service.name for service in services])

    def _interceptors(self) -> list[grpc.aio.ServerInterceptor]:
        token = self._settings.auth_token
        return [] if token is None else [BearerAuthInterceptor(token.get_secret_value())]

    def _bind(self, server: grpc.aio.Server, address: str) -> int:
        """Listen on ``address``, with TLS when a certificate is configured."""
        settings = self._settings
        if settings.tls_cert_file is None or settings.tls_key_file is None:
            return server.add_insecure_port(address)
        credentials = grpc.ssl_server_credentials(
            [(Path(settings.tls_key_file).read_bytes(), Path(settings.tls_cert_file).read_bytes())]
        )
        return server.add_secure_port(address, credentials)

    async def start(self) -> int:
        """Bind and start; returns the bound port (useful when the setting is 0)."""
        servers_before = channelz_server_ids()
        server = grpc.aio.server(
            options=server_options(self._settings), interceptors=self._interceptors()
        )
        generic_only = GenericHandlersOnly(server)
        for service in self._services:
            service.add_to_server(service.servicer, generic_only)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, generic_only)
        names = [service.name for service in self._services]
        names += [HEALTH_SERVICE, REFLECTION_SERVICE]
        pool = reflection_pool(
            [
                *(service.descriptor for service in self._services),
                health_pb2.DESCRIPTOR,
                reflection_pb2.DESCRIPTOR,
            ]
        )
        reflection.enable_server_reflection(names, server, pool=pool)
        address = f"{self._settings.host}:{self._settings.grpc_port}"
        try:
            port = self._bind(server, address)
        except RuntimeError as exc:
            raise OSError(f"cannot listen for gRPC on {address}: {exc}") from None
        if port == 0:
            raise OSError(f"cannot listen for gRPC on {address}")
        await server.start()
        await self.health.refresh()
        self.health.start()
        self._server, self.port = server, port
        self._start_connection_sampler(channelz_server_ids() - servers_before)
        logger.info("gRPC on %s:%d: %s", self._settings.host, port, ", ".join(sorted(names)))
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
        if self.connections is not None:
            self.connections.server_stopped()
