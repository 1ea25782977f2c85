"""Shared fixtures: a fixture model repository and real servers on 127.0.0.1."""

from __future__ import annotations

import asyncio
import os
import shutil
import threading
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import grpc
import httpx
import pytest
from tensorflow_serving.apis import model_service_pb2_grpc, prediction_service_pb2_grpc

from service.config import Settings
from tests import fixtures, tf1_models

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO_ROOT = Path(__file__).resolve().parent.parent
MNIST_NPZ = REPO_ROOT.parent / "shared" / "data" / "mnist.npz"
SHIPPED_MODELS = REPO_ROOT / "models"
T = TypeVar("T")


class ServerThread:
    """A real ``Server`` on 127.0.0.1 with free ports, run on its own loop in a thread."""

    def __init__(
        self, settings: Settings, settings_loader: Callable[[], Settings] | None = None
    ) -> None:
        self.settings = settings
        self._settings_loader = settings_loader
        self.loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True, name="test-server")
        self.server: Any = None

    def _run(self) -> None:
        from service.app import Server

        asyncio.set_event_loop(self.loop)
        try:
            self.server = Server(self.settings, self._settings_loader)
            self.loop.run_until_complete(self.server.start())
        except BaseException as exc:  # surfaced to the test by start()
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        self.loop.run_until_complete(self.server.stopped.wait())

    def start(self) -> ServerThread:
        self._thread.start()
        self._ready.wait(timeout=300)
        if self._error is not None:
            raise self._error
        return self

    def run(self, coroutine: Coroutine[Any, Any, T], timeout: float = 120) -> T:
        """Run a coroutine on the server's loop and return its result."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def stop(self) -> None:
        if self.server is not None and not self.server.stopped.is_set():
            self.run(self.server.stop())
        self._thread.join(timeout=60)

    @property
    def rest_url(self) -> str:
        return f"http://127.0.0.1:{self.server.rest_port}"

    @property
    def grpc_target(self) -> str:
        return f"127.0.0.1:{self.server.grpc_port}"


def make_settings(base: Path, **overrides: Any) -> Settings:
    """Settings for a test server: loopback, free ports, no polling unless asked."""
    values: dict[str, Any] = {
        "model_base_path": str(base),
        "host": "127.0.0.1",
        "rest_port": 0,
        "grpc_port": 0,
        "poll_interval_s": 0,
    }
    values.update(overrides)
    return Settings(**values)


def reloadable_server(models: Path, config: Path) -> ServerThread:
    """A test server over ``models`` whose settings file ``config`` it reloads on demand."""
    overrides = {
        "model_base_path": str(models),
        "host": "127.0.0.1",
        "rest_port": 0,
        "grpc_port": 0,
        "poll_interval_s": 0,
    }

    def load() -> Settings:
        return Settings.load(config, **overrides)

    return ServerThread(load(), load).start()


@pytest.fixture(scope="session")
def fixture_repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny fixture models, plus the shipped mnist_dnn when it exists."""
    base = fixtures.build_repository(tmp_path_factory.mktemp("models"))
    shipped = SHIPPED_MODELS / "mnist_dnn"
    if shipped.exists():
        shutil.copytree(shipped, base / "mnist_dnn")
    return base


@pytest.fixture(scope="session")
def tf1_repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The TF1-style SavedModels of ``tests.tf1_models`` (what stock TF Serving serves)."""
    return tf1_models.build_repository(tmp_path_factory.mktemp("tf1_models"))


@pytest.fixture(scope="session")
def server(fixture_repository: Path) -> Iterator[ServerThread]:
    """One shared server over the fixture repository (tests must not change its models)."""
    thread = ServerThread(make_settings(fixture_repository)).start()
    yield thread
    thread.stop()


@pytest.fixture(scope="session")
def rest(server: ServerThread) -> Iterator[httpx.Client]:
    """An HTTP client bound to the shared server's REST port."""
    with httpx.Client(base_url=server.rest_url, timeout=60) as client:
        yield client


@pytest.fixture(scope="session")
def channel(server: ServerThread) -> Iterator[grpc.Channel]:
    """A gRPC channel to the shared server."""
    with grpc.insecure_channel(server.grpc_target) as chan:
        yield chan


@pytest.fixture(scope="session")
def prediction(channel: grpc.Channel) -> prediction_service_pb2_grpc.PredictionServiceStub:
    """TF Serving's PredictionService stub (tensorflow-serving-api)."""
    return prediction_service_pb2_grpc.PredictionServiceStub(channel)


@pytest.fixture(scope="session")
def model_service(channel: grpc.Channel) -> model_service_pb2_grpc.ModelServiceStub:
    """TF Serving's ModelService stub (tensorflow-serving-api)."""
    return model_service_pb2_grpc.ModelServiceStub(channel)
