"""The gRPC server itself: reflection, health (overall, per model, draining), ports."""

from __future__ import annotations

import threading
from pathlib import Path
from unittest import mock

import grpc
import pytest
from google.protobuf import descriptor_pool
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)

from service.transport.grpc_server import GenericHandlersOnly
from tests.conftest import ServerThread, make_settings
from tests.helpers import health_status

SERVICES = {
    "tensorflow.serving.PredictionService",
    "tensorflow.serving.ModelService",
    "inference.GRPCInferenceService",
    "grpc.health.v1.Health",
    "grpc.reflection.v1alpha.ServerReflection",
}


def test_reflection_lists_and_describes_every_service(channel: grpc.Channel) -> None:
    database = ProtoReflectionDescriptorDatabase(channel)
    assert set(database.get_services()) == SERVICES
    pool = descriptor_pool.DescriptorPool(database)
    v2 = pool.FindServiceByName("inference.GRPCInferenceService")
    assert {m.name for m in v2.methods} >= {
        "ServerLive",
        "ServerReady",
        "ModelReady",
        "ServerMetadata",
        "ModelMetadata",
        "ModelInfer",
        "ModelConfig",
    }
    predict = pool.FindServiceByName("tensorflow.serving.PredictionService").methods_by_name[
        "Predict"
    ]
    assert predict.input_type.full_name == "tensorflow.serving.PredictRequest"
    tensor = pool.FindMessageTypeByName("tensorflow.TensorProto")
    assert "tensor_content" in tensor.fields_by_name


def test_health_overall_per_service_and_per_model(channel: grpc.Channel) -> None:
    serving = health_pb2.HealthCheckResponse.SERVING
    for service in (
        "",
        *sorted(SERVICES - {"grpc.reflection.v1alpha.ServerReflection", "grpc.health.v1.Health"}),
    ):
        assert health_status(channel, service) == serving, service
    for model in ("half_plus_two", "two_io", "tiny_image"):
        assert health_status(channel, model) == serving
    with pytest.raises(grpc.RpcError) as info:
        health_status(channel, "unknown")
    assert info.value.code() is grpc.StatusCode.NOT_FOUND


def test_draining_reports_not_serving_to_watchers(fixture_repository: Path) -> None:
    thread = ServerThread(make_settings(fixture_repository, shutdown_timeout_s=5)).start()
    with grpc.insecure_channel(thread.grpc_target) as chan:
        stream = health_pb2_grpc.HealthStub(chan).Watch(
            health_pb2.HealthCheckRequest(service=""), timeout=60
        )
        assert next(stream).status == health_pb2.HealthCheckResponse.SERVING
        stopper = threading.Thread(target=thread.stop)
        stopper.start()
        assert next(stream).status == health_pb2.HealthCheckResponse.NOT_SERVING
        stream.cancel()  # the open stream would otherwise hold the grace period
        stopper.join(timeout=60)
    assert thread.server.stopped.is_set()


def test_busy_grpc_port_fails_start(fixture_repository: Path, server: ServerThread) -> None:
    settings = make_settings(fixture_repository, grpc_port=server.server.grpc_port)
    with pytest.raises(OSError, match="cannot listen for gRPC"):
        ServerThread(settings).start()


async def test_generated_services_register_only_their_generic_handler() -> None:
    """Registered methods would each add a pending future that every call waits on."""
    server = grpc.aio.server()
    spy = mock.Mock(wraps=server)
    servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, GenericHandlersOnly(spy))
    assert spy.add_generic_rpc_handlers.call_count == 1
    assert spy.add_registered_method_handlers.call_count == 0
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        await servicer.set("svc", health_pb2.HealthCheckResponse.SERVING)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as chan:
            reply = await health_pb2_grpc.HealthStub(chan).Check(
                health_pb2.HealthCheckRequest(service="svc"), timeout=10
            )
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
    finally:
        await server.stop(None)
