"""gRPC health checking (``grpc.health.v1.Health``) over the models the core serves.

Service names answered:

* ``""`` (the whole server) and each gRPC service name: SERVING when the server is ready
  (first load done, every model has an available version, not draining), else NOT_SERVING;
* each model name: SERVING when the model has an AVAILABLE version, else NOT_SERVING;
* anything else: NOT_FOUND (``Check``) / SERVICE_UNKNOWN (``Watch``), as the reference
  servicer does.

``Check`` reads the current state on every call; a background refresh keeps ``Watch``
streams up to date. Once shutdown starts everything is NOT_SERVING for good.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from typing import Protocol

import grpc
from grpc_health.v1 import health, health_pb2

from service.inference.core import InferenceCore
from service.views import VersionState

logger = logging.getLogger(__name__)
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


class HealthMirror(Protocol):
    """Another process's health servicer kept in step (the gRPC front's ``Watch`` streams)."""

    def publish_health(self, service: str, status: int) -> None: ...

    def shutdown_health(self) -> None: ...


class ServingHealth(health.aio.HealthServicer):
    """The reference asyncio health servicer, fed from the core's view of the models.

    Args:
        core: the inference core.
        is_ready: the server's readiness (False while loading or draining).
        service_names: gRPC services reported with the server's overall status.
    """

    def __init__(
        self,
        core: InferenceCore,
        is_ready: Callable[[], bool],
        service_names: Sequence[str] = (),
    ) -> None:
        super().__init__()
        self._core = core
        self._is_ready = is_ready
        self._service_names = ("", *service_names)
        self._models: set[str] = set()
        self._task: asyncio.Task[None] | None = None
        self.statuses: dict[str, int] = {}
        """Each service's status as last set (until shutdown)."""
        self.mirror: HealthMirror | None = None
        """Told of every change of ``statuses``, and of the shutdown."""

    async def set(self, service: str, status: int) -> None:  # type: ignore[override]
        """Set a service's status, and tell the mirror when it changed."""
        await super().set(service, status)
        if self._gracefully_shutting_down or self.statuses.get(service) == status:
            return
        self.statuses[service] = status
        if self.mirror is not None:
            self.mirror.publish_health(service, status)

    async def refresh(self) -> None:
        """Set every status from the models' current state."""
        overall = SERVING if self._is_ready() else NOT_SERVING
        for name in self._service_names:
            await self.set(name, overall)
        models = set(self._core.model_names())
        for name in models:
            available = any(
                status.state is VersionState.AVAILABLE for status in self._core.statuses(name)
            )
            await self.set(name, SERVING if available else NOT_SERVING)
        for name in self._models - models:  # a model whose folder was removed
            await self.set(name, NOT_SERVING)
        self._models |= models

    async def Check(
        self, request: health_pb2.HealthCheckRequest, context: grpc.aio.ServicerContext
    ) -> health_pb2.HealthCheckResponse:
        await self.refresh()
        return await super().Check(request, context)

    def start(self, interval_s: float = 0.5) -> None:
        """Refresh in the background so ``Watch`` streams see state changes."""
        self._task = asyncio.get_running_loop().create_task(self._refresh_forever(interval_s))

    async def _refresh_forever(self, interval_s: float) -> None:
        while True:
            try:
                await self.refresh()
            except Exception:
                logger.exception("health refresh failed")
            await asyncio.sleep(interval_s)

    async def shutdown(self) -> None:
        """Stop refreshing and report NOT_SERVING for every service from now on."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.enter_graceful_shutdown()
        if self.mirror is not None:
            self.mirror.shutdown_health()
