"""``auto`` keeps the fastest runtime, keeps TensorFlow on a GPU, and reports failed variants.

The candidates are real runtimes over an optimized copy of mnist_dnn; a stand-in wraps one
with a deliberate delay per batch (far above mnist's sub-millisecond batches), so which one
is fastest is known without timing anything in the test.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import numpy as np
import pytest

from service.models.runtime import Arrays, Runtime, SavedModelRuntime
from service.models.runtime_choice import choose
from service.models.runtime_variants import (
    OnnxRuntime,
    TFLiteRuntime,
    VariantMissingError,
    open_variant,
)
from tests.service.models.variant_helpers import optimized_mnist

DELAY_S = 0.05


class Slow:
    """A real runtime made deliberately slow."""

    def __init__(self, inner: Runtime) -> None:
        self.inner = inner
        self.path = inner.path
        self.signatures = inner.signatures
        self.signature_defs = inner.signature_defs
        self.closed = False

    def predict(self, signature: str, inputs: Arrays) -> Arrays:
        time.sleep(DELAY_S)
        return self.inner.predict(signature, inputs)

    def close(self) -> None:
        self.closed = True
        self.inner.close()


@pytest.fixture(scope="module")
def version(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return optimized_mnist(tmp_path_factory.mktemp("choice"))


def test_auto_serves_the_fastest_runtime(version: Path) -> None:
    opened: dict[str, Runtime] = {}

    def opener(path: str, name: str, threads: int) -> Runtime:
        runtime = open_variant(path, name, threads)
        opened[name] = runtime if name == "onnxruntime" else Slow(runtime)
        return opened[name]

    choice = choose(
        str(version),
        "auto",
        "/device:CPU:0",
        lambda: Slow(SavedModelRuntime(version)),
        ["tflite", "tflite-int8", "onnxruntime"],
        [1, 8],
        opener=opener,
    )
    assert choice.name == "onnxruntime"
    assert isinstance(choice.runtime, OnnxRuntime)
    assert set(choice.timings_s) == {"tensorflow", "tflite", "tflite-int8", "onnxruntime"}
    assert min(choice.timings_s, key=choice.timings_s.__getitem__) == "onnxruntime"
    assert all(r.closed for n, r in opened.items() if n != "onnxruntime")
    batch = np.zeros((3, 28, 28), np.float32)
    assert choice.runtime.predict("serving_default", {"image": batch})["probabilities"].shape == (
        3,
        10,
    )


def test_auto_keeps_tensorflow_on_a_gpu(version: Path) -> None:
    def opener(path: str, name: str, threads: int) -> Runtime:
        raise AssertionError("no variant is opened on a GPU")

    choice = choose(
        str(version),
        "auto",
        "/device:GPU:0",
        lambda: SavedModelRuntime(version),
        ["tflite", "onnxruntime"],
        [1],
        opener=opener,
    )
    assert choice.name == "tensorflow"
    assert isinstance(choice.runtime, SavedModelRuntime)


def test_auto_skips_a_corrupt_variant_and_reports_it(version: Path, tmp_path: Path) -> None:
    copy = tmp_path / "1"
    shutil.copytree(version, copy)
    (copy / "model.onnx").write_bytes(b"\x08\x07garbage")
    choice = choose(
        str(copy), "auto", "/device:CPU:0", lambda: SavedModelRuntime(copy), ["onnxruntime"], [1]
    )
    assert choice.name == "tensorflow"
    assert "not a usable ONNX model" in choice.failed["onnxruntime"]


def test_a_named_runtime_is_served_with_the_configured_threads(version: Path) -> None:
    choice = choose(
        str(version),
        "onnxruntime",
        "/device:CPU:0",
        lambda: SavedModelRuntime(version),
        [],
        [1],
        threads=1,
    )
    assert choice.name == "onnxruntime"
    assert isinstance(choice.runtime, OnnxRuntime)
    assert choice.runtime.session_options().intra_op_num_threads == 1


def test_a_tflite_variant_serves_the_signature_at_any_batch_size(version: Path) -> None:
    runtime = TFLiteRuntime(version, "tflite-int8", threads=1)
    for size in (1, 7, 32):
        batch = np.random.default_rng(size).random((size, 28, 28), dtype=np.float32)
        assert runtime.predict("serving_default", {"image": batch})["probabilities"].shape == (
            size,
            10,
        )


def test_a_named_runtime_without_its_file_is_a_load_error(tmp_path: Path, version: Path) -> None:
    copy = tmp_path / "1"
    shutil.copytree(version, copy, ignore=shutil.ignore_patterns("*.tflite"))
    with pytest.raises(VariantMissingError, match=r"model-fp16\.tflite"):
        choose(str(copy), "tflite-fp16", "/device:CPU:0", lambda: SavedModelRuntime(copy), [], [1])
