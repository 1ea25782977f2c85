"""Wiring: every component is built here and handed to the next through its constructor.

One asyncio loop runs the model manager, the batchers, the ASGI server (uvicorn) and,
where configured, the gRPC server.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import tensorflow as tf
import uvicorn

from service.config import ModelSettings, Settings
from service.evaluation.drift import DriftMonitor
from service.evaluation.feedback import Feedback
from service.evaluation.payload_log import PayloadLog
from service.inference.core import InferenceCore
from service.inference.shadow import ShadowMirror
from service.inference.side_work import SideWork
from service.metrics import Metrics
from service.models.devices import choose_device, configure_tensorflow
from service.models.manager import ModelManager
from service.protocols.console import ConsoleRest
from service.protocols.experiments import ExperimentsRest
from service.protocols.feedback import FeedbackRest
from service.protocols.kserve_v2.grpc import grpc_services as v2_grpc_services
from service.protocols.kserve_v2.rest import V2Rest
from service.protocols.ops import OpsRest
from service.protocols.tfserving.grpc import grpc_services as tfserving_grpc_services
from service.protocols.tfserving.rest import TFServingRest
from service.reload import SettingsReloader
from service.transport.auth import OPEN_REST_PATHS
from service.transport.grpc_server import GrpcServer
from service.transport.openapi import openapi_route
from service.transport.rest_app import RestApp
from service.transport.rest_edge import EdgeLimits, guarded_protocol

logger = logging.getLogger(__name__)


class Server:
    """The whole service: model manager, inference core and protocol servers.

    Args:
        settings: the server's settings.
        settings_loader: rebuilds the settings from their file, flags and environment; with
            it the server reloads them live (``service.reload``).
        reload_interval_s: how often the loader runs (default ``poll_interval_s``; 0: only
            on demand).
        metrics_path: a second path serving ``/metrics`` (TF Serving's monitoring path).
    """

    def __init__(
        self,
        settings: Settings,
        settings_loader: Callable[[], Settings] | None = None,
        *,
        reload_interval_s: float | None = None,
        metrics_path: str | None = None,
    ) -> None:
        self.settings = settings
        self._reload_interval_s = (
            settings.poll_interval_s if reload_interval_s is None else reload_interval_s
        )
        metrics_paths = ("/metrics", *([metrics_path] if metrics_path else []))
        self.metrics = Metrics(tf_module=tf)
        gpus = configure_tensorflow(
            tf,
            memory_growth=settings.gpu_memory_growth,
            intra_op_threads=settings.intra_op_threads,
            inter_op_threads=settings.inter_op_threads,
        )
        self._gpu_count = len(gpus)
        self._run_executor = ThreadPoolExecutor(4, thread_name_prefix="model")
        self._load_executor = ThreadPoolExecutor(1, thread_name_prefix="loader")
        self._preprocess_executor = ThreadPoolExecutor(2, thread_name_prefix="preprocess")
        self.manager = ModelManager(
            settings, self.metrics, self._run_executor, self._load_executor, self.device_for
        )
        self.core = InferenceCore(self.manager, settings, self.metrics, self._preprocess_executor)
        self.side_work = SideWork(self.core.inflight, self.metrics)
        self.shadow = ShadowMirror(self.core, settings, self.metrics, self.side_work)
        self.core.add_listener(self.shadow)
        self.ops = OpsRest(self.core, self.metrics, metrics_paths)
        self.feedback = Feedback(settings.evaluation, self.metrics)
        self.core.add_listener(self.feedback)
        self.drift = DriftMonitor(
            settings.evaluation,
            self.metrics,
            settings.model_base_path,
            self.side_work,
            lambda: self.settings.model_paths,
        )
        self.core.add_listener(self.drift)
        self.payload_log = (
            None
            if settings.evaluation.payload_log_dir is None
            else PayloadLog(settings.evaluation, self.metrics, self.side_work)
        )
        if self.payload_log is not None:
            self.core.add_listener(self.payload_log)
        self.settings_applier = SettingsReloader(
            settings_loader, settings, self._settings_changed, self.metrics
        )
        self.reloader = None if settings_loader is None else self.settings_applier
        token = settings.auth_token
        tfserving_rest = TFServingRest(self.core, settings)
        v2_rest = V2Rest(self.core, settings, self.metrics)
        self.rest_app = RestApp(
            [
                *FeedbackRest(self.core, self.feedback).routes(),
                *tfserving_rest.routes(),
                *v2_rest.routes(),
                *self.ops.routes(),
                *ExperimentsRest(self.core, settings.rollout_control).routes(),
                openapi_route(),
                *ConsoleRest(self.core, self.feedback, self.metrics).routes(),
            ],
            [*tfserving_rest.inference_lanes(), *v2_rest.inference_lanes()],
            auth_token=token and token.get_secret_value(),
            open_paths=OPEN_REST_PATHS
            | set(() if settings.metrics_require_auth else metrics_paths),
        )
        grpc_services = [
            *tfserving_grpc_services(
                self.core, settings.enable_serialization_as_tensor_content, self.serve_models
            ),
            *v2_grpc_services(self.core, settings, self.metrics, self.ops.is_ready),
        ]
        self.grpc = GrpcServer(settings, grpc_services, self.core, self.ops.is_ready, self.metrics)
        self.grpc_port = settings.grpc_port
        self._uvicorn: uvicorn.Server | None = None
        self._uvicorn_task: asyncio.Task[None] | None = None
        self.rest_port: int | None = settings.rest_port if settings.rest_enabled else None
        self.stopped = asyncio.Event()

    async def _settings_changed(self) -> None:
        """After a reload: the manager acts on the models' settings, and the evaluation
        listeners on theirs."""
        self.feedback.settings_changed()
        if self.payload_log is not None:
            self.payload_log.settings_changed()
        await self.manager.poll_once()

    async def serve_models(
        self, model_paths: dict[str, str], models: dict[str, ModelSettings]
    ) -> None:
        """Serve exactly these models (a pushed model config) and return once their loads,
        and the retirements they allow, have settled."""
        await self.settings_applier.apply_models(model_paths, models)
        await self.manager.wait_for_loads()
        await self.manager.poll_once()  # retire what the new loads freed, forget the removed
        await self.manager.wait_for_loads()

    def device_for(self, model: str) -> str:
        """The TensorFlow device a model's versions are placed on."""
        return choose_device(self.settings.device_for(model), self._gpu_count)

    async def start(self) -> None:
        """Load the models, then open the gRPC and REST ports."""
        await self.manager.start()
        if self.reloader is not None and self._reload_interval_s > 0:
            self.reloader.start(self._reload_interval_s)
        self.grpc_port = await self.grpc.start()
        if self.settings.rest_enabled:
            await self._start_rest()
        logger.info(
            "%s, gRPC on %s:%d; models: %s",
            "REST off"
            if self.rest_port is None
            else f"REST on {self.settings.host}:{self.rest_port}",
            self.settings.host,
            self.grpc_port,
            self.manager.model_names(),
        )

    async def _start_rest(self) -> None:
        """Open the REST port (uvicorn on this loop)."""
        config = uvicorn.Config(
            self.rest_app,
            host=self.settings.host,
            port=self.settings.rest_port,
            http=guarded_protocol(EdgeLimits.from_settings(self.settings), self.metrics),
            loop="none",
            lifespan="off",
            access_log=False,
            log_level="warning",
            backlog=2048,
            timeout_keep_alive=self.settings.rest_keep_alive_timeout_s,
            ssl_certfile=self.settings.tls_cert_file,
            ssl_keyfile=self.settings.tls_key_file,
            # uvicorn types this int, but waits with asyncio.wait_for: a float is kept exact
            timeout_graceful_shutdown=self.settings.shutdown_timeout_s,
        )  # type: ignore[arg-type]
        self._uvicorn = uvicorn.Server(config)
        # _serve is serve() without uvicorn's own signal handling: ours drains gracefully
        self._uvicorn_task = asyncio.get_running_loop().create_task(self._uvicorn._serve())
        while not self._uvicorn.started:
            if self._uvicorn_task.done():
                await self.grpc.stop(0)
                raise OSError(f"cannot listen on {self.settings.host}:{self.settings.rest_port}")
            await asyncio.sleep(0.01)
        self.rest_port = self._uvicorn.servers[0].sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Turn not-ready, stop accepting, finish admitted requests, unload models."""
        self.ops.draining = True
        grpc_stopped = asyncio.get_running_loop().create_task(
            self.grpc.stop(self.settings.shutdown_timeout_s)
        )
        if self._uvicorn is not None and self._uvicorn_task is not None:
            self._uvicorn.should_exit = True
            await self._uvicorn_task
        await grpc_stopped
        if self.reloader is not None:
            await self.reloader.stop()
        await self.side_work.close()  # what is queued runs now, while the models are loaded
        await self.manager.close()
        if self.payload_log is not None:
            self.payload_log.close()
        for executor in (self._run_executor, self._load_executor, self._preprocess_executor):
            executor.shutdown(wait=False, cancel_futures=True)
        self.stopped.set()
