"""Every variant of the shipped mnist_dnn served through the real server, and the fallbacks.

One server serves a copy of mnist_dnn version 1 per runtime (``tensorflow``, ``tflite``,
``tflite-fp16``, ``tflite-int8``, ``onnxruntime``); each answers the 10,000 MNIST test
images over gRPC Predict and must stay within the gate (accuracy drop ≤ 0.5 points against
TensorFlow's, top-1 agreement ≥ 99%). A truncated variant file is served by TensorFlow; a
configured runtime whose file is absent fails the version with a message naming the file.
"""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import httpx
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from service.models.runtime_variants import VARIANT_FILES, TFLiteRuntime, VariantError
from tests.conftest import ServerThread, make_settings
from tests.service.models.variant_helpers import mnist_test, optimized_mnist

RUNTIMES = ("tensorflow", "tflite", "tflite-fp16", "tflite-int8", "onnxruntime")
REQUEST_ROWS = 500


@pytest.fixture(scope="module")
def variant_version(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return optimized_mnist(tmp_path_factory.mktemp("optimized"))


@pytest.fixture(scope="module")
def served(
    variant_version: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerThread]:
    base = tmp_path_factory.mktemp("variant-models")
    for runtime in RUNTIMES:
        shutil.copytree(variant_version, base / f"mnist_{runtime}" / "1")
    broken = base / "mnist_truncated" / "1"
    shutil.copytree(variant_version, broken)
    tflite = broken / VARIANT_FILES["tflite"]
    tflite.write_bytes(tflite.read_bytes()[:1000])
    plain = base / "mnist_plain" / "1"
    shutil.copytree(variant_version, plain, ignore=shutil.ignore_patterns("*.onnx"))
    models = {f"mnist_{r}": {"runtime": r} for r in RUNTIMES}
    shutil.copytree(variant_version, base / "mnist_auto" / "1")
    models["mnist_auto"] = {"runtime": "auto"}
    models["mnist_truncated"] = {"runtime": "tflite"}
    models["mnist_plain"] = {"runtime": "onnxruntime"}
    thread = ServerThread(make_settings(base, models=models)).start()
    yield thread
    thread.stop()


def predicted_classes(target: str, model: str, inputs: np.ndarray) -> np.ndarray:
    with grpc.insecure_channel(target) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        classes = []
        for start in range(0, len(inputs), REQUEST_ROWS):
            request = predict_pb2.PredictRequest()
            request.model_spec.name = model
            request.inputs["image"].CopyFrom(
                tf.make_tensor_proto(inputs[start : start + REQUEST_ROWS])
            )
            response = stub.Predict(request, timeout=60)
            classes.append(tf.make_ndarray(response.outputs["probabilities"]).argmax(axis=1))
    return np.concatenate(classes)


def runtime_series(rest_url: str) -> dict[str, str]:
    text = httpx.get(f"{rest_url}/metrics").text
    series = {}
    for line in text.splitlines():
        if line.startswith("primer_model_runtime{") and line.endswith(" 1.0"):
            labels = dict(
                part.split("=", 1)
                for part in line[line.index("{") + 1 : line.index("}")].split(",")
            )
            series[labels["model"].strip('"')] = labels["runtime"].strip('"')
    return series


def test_every_variant_keeps_accuracy_on_the_mnist_test_set(served: ServerThread) -> None:
    inputs, labels = mnist_test()
    reference = predicted_classes(served.grpc_target, "mnist_tensorflow", inputs)
    reference_accuracy = float(np.mean(reference == labels))
    assert reference_accuracy > 0.95
    for runtime in RUNTIMES[1:]:
        classes = predicted_classes(served.grpc_target, f"mnist_{runtime}", inputs)
        accuracy = float(np.mean(classes == labels))
        assert reference_accuracy - accuracy <= 0.005, (runtime, accuracy, reference_accuracy)
        assert float(np.mean(classes == reference)) >= 0.99, runtime


def test_each_model_exports_the_runtime_serving_it(served: ServerThread) -> None:
    series = runtime_series(served.rest_url)
    console = httpx.get(f"{served.rest_url}/console/summary").json()
    shown = {m["name"]: m["versions"][0]["runtime"] for m in console["models"]}
    for runtime in RUNTIMES:
        assert series[f"mnist_{runtime}"] == runtime
        assert shown[f"mnist_{runtime}"] == runtime


def test_auto_serves_one_of_the_gated_runtimes_within_the_gate(served: ServerThread) -> None:
    assert runtime_series(served.rest_url)["mnist_auto"] in RUNTIMES
    inputs, labels = mnist_test()
    classes = predicted_classes(served.grpc_target, "mnist_auto", inputs)
    assert float(np.mean(classes == labels)) > 0.97


def test_a_truncated_variant_is_served_by_tensorflow(served: ServerThread) -> None:
    assert runtime_series(served.rest_url)["mnist_truncated"] == "tensorflow"
    inputs, labels = mnist_test()
    classes = predicted_classes(served.grpc_target, "mnist_truncated", inputs[:1000])
    assert float(np.mean(classes == labels[:1000])) > 0.95


def test_a_configured_runtime_without_its_file_fails_the_version_clearly(
    served: ServerThread,
) -> None:
    body = httpx.get(f"{served.rest_url}/v1/models/mnist_plain").json()
    (status,) = body["model_version_status"]
    assert status["state"] == "END"
    assert "model.onnx" in status["status"]["error_message"]
    assert "primer-train optimize" in status["status"]["error_message"]


def test_a_corrupt_variant_file_is_a_variant_error(variant_version: Path, tmp_path: Path) -> None:
    version = tmp_path / "1"
    shutil.copytree(variant_version, version)
    (version / "model.tflite").write_bytes(b"not a flatbuffer")
    with pytest.raises(VariantError, match="not a usable TFLite model"):
        TFLiteRuntime(version)


def test_tflite_runs_concurrent_batches_on_one_interpreter_per_thread(
    variant_version: Path,
) -> None:
    runtime = TFLiteRuntime(variant_version, runtime_name="tflite-int8", threads=1)
    inputs, _ = mnist_test()
    chunks = [inputs[i * 64 : (i + 1) * 64] for i in range(8)]
    serial = [runtime.predict("serving_default", {"image": c})["probabilities"] for c in chunks]
    start = threading.Barrier(4)

    def run_all() -> list[np.ndarray]:
        start.wait()  # the four threads run their batches at the same time
        return [runtime.predict("serving_default", {"image": c})["probabilities"] for c in chunks]

    with ThreadPoolExecutor(4) as pool:
        results = [pool.submit(run_all) for _ in range(4)]
        for result in results:
            for expected, got in zip(serial, result.result(timeout=120), strict=True):
                np.testing.assert_array_equal(got, expected)
    assert runtime.interpreters == 5  # the loading thread's and one per pool thread
    runtime.close()
    assert runtime.interpreters == 0


def test_v2_metadata_and_config_name_the_serving_runtime(served: ServerThread) -> None:
    expected = {"tensorflow": "tensorflow_savedmodel", "onnxruntime": "onnxruntime_onnx"}
    for runtime in RUNTIMES:
        url = f"{served.rest_url}/v2/models/mnist_{runtime}"
        platform = expected.get(runtime, "tensorflow_lite")
        assert httpx.get(url).json()["platform"] == platform
        config = httpx.get(f"{url}/config").json()
        assert config["backend"] == runtime


def test_a_new_version_on_a_variant_runtime_replaces_the_old_without_a_gap(
    variant_version: Path, tmp_path: Path
) -> None:
    shutil.copytree(variant_version, tmp_path / "mnist" / "1")
    settings = make_settings(tmp_path, poll_interval_s=0.1, models={"mnist": {"runtime": "tflite"}})
    thread = ServerThread(settings).start()
    try:
        inputs, labels = mnist_test()
        shutil.copytree(variant_version, tmp_path / "mnist" / ".staging")
        (tmp_path / "mnist" / ".staging").rename(tmp_path / "mnist" / "2")
        versions: set[str] = set()
        for _ in range(200):  # every request answers while version 2 loads and 1 retires
            classes = predicted_classes(thread.grpc_target, "mnist", inputs[:100])
            assert float(np.mean(classes == labels[:100])) > 0.9
            series = runtime_series(thread.rest_url)
            versions = {
                line.split('version="')[1].split('"')[0]
                for line in httpx.get(f"{thread.rest_url}/metrics").text.splitlines()
                if line.startswith("primer_model_runtime{") and 'runtime="tflite"' in line
            }
            if versions == {"2"}:
                break
        assert versions == {"2"}
        assert series["mnist"] == "tflite"
    finally:
        thread.stop()
