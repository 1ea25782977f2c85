"""A server over the TF1-style models, shared by the TF Serving model-server tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import pytest
from tensorflow_serving.apis import prediction_service_pb2_grpc

from tests.conftest import ServerThread, make_settings


@pytest.fixture(scope="session")
def tf1_server(tf1_repository: Path) -> Iterator[ServerThread]:
    """One server over ``tf1_half_plus_two`` (versions 7 and 123, both served) and
    ``tfx_census``."""
    every_version = {"tf1_half_plus_two": {"version_policy": "all"}}
    thread = ServerThread(make_settings(tf1_repository, models=every_version)).start()
    yield thread
    thread.stop()


@pytest.fixture(scope="session")
def tf1_rest(tf1_server: ServerThread) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=tf1_server.rest_url, timeout=60) as client:
        yield client


@pytest.fixture(scope="session")
def tf1_prediction(
    tf1_server: ServerThread,
) -> Iterator[prediction_service_pb2_grpc.PredictionServiceStub]:
    with grpc.insecure_channel(tf1_server.grpc_target) as channel:
        yield prediction_service_pb2_grpc.PredictionServiceStub(channel)
