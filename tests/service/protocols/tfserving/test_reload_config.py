"""gRPC ``ModelService/HandleReloadConfigRequest`` on a real socket, as TF Serving's
``model_service_impl.cc`` serves it: the request's ``model_config_list`` replaces the served
models the way a ``--model_config_file`` reload does; the call answers OK (``status``
error code 0) once the listed models are loaded, INVALID_ARGUMENT for a config this server
cannot serve (nothing changes), and a model whose versions all fail to load fails it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from tensorflow_serving.apis import (
    get_model_status_pb2,
    model_management_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)
from tensorflow_serving.config import model_server_config_pb2

from tests.conftest import ServerThread, make_settings
from tests.fixtures import half_plus_two, two_versions

AVAILABLE = get_model_status_pb2.ModelVersionStatus.AVAILABLE


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("reload_config")
    half_plus_two(root / "a" / "1")
    two_versions(root / "b")  # v1: 0.5x + 2, v2: x + 2
    (root / "broken" / "1").mkdir(parents=True)
    (root / "broken" / "1" / "saved_model.pb").write_bytes(b"not a SavedModel")
    return {name: root / name for name in ("a", "b", "broken")}


@pytest.fixture(scope="module")
def server(folders: dict[str, Path]) -> Iterator[ServerThread]:
    settings = make_settings(folders["a"].parent, model_paths={"a": str(folders["a"])})
    thread = ServerThread(settings).start()
    yield thread
    thread.stop()


@pytest.fixture(scope="module")
def channel(server: ServerThread) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(server.grpc_target) as opened:
        yield opened


def entry(name: str, folder: Path) -> model_server_config_pb2.ModelConfig:
    return model_server_config_pb2.ModelConfig(
        name=name, base_path=str(folder), model_platform="tensorflow"
    )


def reload(channel: grpc.Channel, *configs: model_server_config_pb2.ModelConfig):
    request = model_management_pb2.ReloadConfigRequest()
    request.config.model_config_list.config.extend(configs)
    stub = model_service_pb2_grpc.ModelServiceStub(channel)
    return stub.HandleReloadConfigRequest(request, timeout=120)


def predict(channel: grpc.Channel, model: str, label: str = "") -> list[float]:
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model
    if label:
        request.model_spec.version_label = label
    request.inputs["x"].dtype = 1  # DT_FLOAT
    request.inputs["x"].tensor_shape.dim.add(size=1)
    request.inputs["x"].tensor_shape.dim.add(size=3)
    request.inputs["x"].float_val.extend([1.0, 2.0, 3.0])
    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    return list(stub.Predict(request, timeout=30).outputs["y"].float_val)


def states(channel: grpc.Channel, model: str) -> dict[int, int]:
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = model
    response = model_service_pb2_grpc.ModelServiceStub(channel).GetModelStatus(request, timeout=30)
    return {status.version: status.state for status in response.model_version_status}


def refused(call) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as info:
        call()
    return info.value


def test_reload_adds_a_labelled_model_then_takes_it_away(
    channel: grpc.Channel, folders: dict[str, Path]
) -> None:
    assert predict(channel, "a") == [2.5, 3.0, 3.5]
    assert refused(lambda: predict(channel, "b")).code() is grpc.StatusCode.NOT_FOUND
    b = entry("b", folders["b"])
    b.model_version_policy.all.SetInParent()
    b.version_labels["stable"] = 1
    b.version_labels["canary"] = 2
    response = reload(channel, entry("a", folders["a"]), b)
    assert (response.status.error_code, response.status.error_message) == (0, "")
    assert states(channel, "b") == {1: AVAILABLE, 2: AVAILABLE}  # loaded before the answer
    assert predict(channel, "b", "stable") == [2.5, 3.0, 3.5]
    assert predict(channel, "b", "canary") == [3.0, 4.0, 5.0]
    assert predict(channel, "a") == [2.5, 3.0, 3.5]

    assert reload(channel, entry("a", folders["a"])).status.error_code == 0
    assert refused(lambda: predict(channel, "b")).code() is grpc.StatusCode.NOT_FOUND
    assert refused(lambda: states(channel, "b")).code() is grpc.StatusCode.NOT_FOUND
    assert states(channel, "a") == {1: AVAILABLE}


@pytest.mark.parametrize(
    ("configure", "expected"),
    [
        (lambda request: None, "Only ModelConfigList is currently supported"),
        (
            lambda request: request.config.custom_model_config.Pack(
                model_server_config_pb2.ModelConfig()
            ),
            "Only ModelConfigList is currently supported",
        ),
        (
            lambda request: request.config.model_config_list.config.add(
                name="c", base_path="/models/c", model_platform="pytorch"
            ),
            "ReloadConfigRequest: model 'c': model_platform 'pytorch' is not supported",
        ),
        (
            lambda request: request.config.model_config_list.config.add(
                name="c", base_path="https://example.com/c"
            ),
            "models are never loaded from URLs",
        ),
        (
            lambda request: request.config.model_config_list.config.add(name="c"),
            "ReloadConfigRequest: model 'c' has no base_path",
        ),
    ],
)
def test_a_config_this_server_cannot_serve_is_invalid_and_changes_nothing(
    channel: grpc.Channel, configure, expected: str
) -> None:
    request = model_management_pb2.ReloadConfigRequest()
    configure(request)
    stub = model_service_pb2_grpc.ModelServiceStub(channel)
    error = refused(lambda: stub.HandleReloadConfigRequest(request, timeout=30))
    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert expected in error.details()
    assert predict(channel, "a") == [2.5, 3.0, 3.5]


def test_a_model_that_fails_to_load_fails_the_reload(
    channel: grpc.Channel, folders: dict[str, Path]
) -> None:
    error = refused(
        lambda: reload(channel, entry("a", folders["a"]), entry("bad", folders["broken"]))
    )
    assert error.code() is grpc.StatusCode.UNAVAILABLE
    assert "model 'bad' has no AVAILABLE version: version 1 failed to load" in error.details()
    assert predict(channel, "a") == [2.5, 3.0, 3.5]
    assert reload(channel, entry("a", folders["a"])).status.error_code == 0
    assert refused(lambda: states(channel, "bad")).code() is grpc.StatusCode.NOT_FOUND
