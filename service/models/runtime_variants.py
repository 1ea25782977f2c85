"""Deployment-variant runtimes: TFLite (LiteRT) and ONNX Runtime behind ``Runtime``.

A variant file (``model.tflite``, ``model-fp16.tflite``, ``model-int8.tflite``,
``model.onnx``) sits in the version folder beside the SavedModel, written by
``primer-train optimize``. Each runtime serves the SavedModel's serving signature with the
same names, dtypes and shapes, so batching, preprocessing, protocols and metrics do not
change; the signature specs and ``SignatureDef`` metadata are read from ``saved_model.pb``.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf
from tensorflow.core.protobuf import meta_graph_pb2

from contract.layout import SIGNATURE, VARIANT_FILES
from service.models.runtime import Arrays, read_signature_defs
from service.views import SignatureSpec, TensorSpec

TENSORFLOW = "tensorflow"
RUNTIMES = (TENSORFLOW, *VARIANT_FILES)
__all__ = [
    "RUNTIMES",
    "TENSORFLOW",
    "VARIANT_FILES",
    "OnnxRuntime",
    "TFLiteRuntime",
    "open_variant",
]


class VariantError(RuntimeError):
    """A variant is missing, corrupt or does not match the SavedModel's signature."""


class VariantMissingError(VariantError):
    """A runtime's variant file is not in the version folder."""


def _spec_of(name: str, info: meta_graph_pb2.TensorInfo) -> TensorSpec:
    dtype = tf.dtypes.as_dtype(info.dtype)
    shape = None
    if not info.tensor_shape.unknown_rank:
        shape = tuple(None if d.size < 0 else int(d.size) for d in info.tensor_shape.dim)
    numpy_dtype = np.dtype(object) if dtype == tf.string else np.dtype(dtype.as_numpy_dtype)
    return TensorSpec(
        name=name, dtype=numpy_dtype, shape=shape, dtype_name=dtype.name, tensor_name=info.name
    )


def serving_signature(path: str) -> tuple[dict[str, meta_graph_pb2.SignatureDef], SignatureSpec]:
    """The SavedModel's SignatureDefs and our spec of its serving signature."""
    defs = read_signature_defs(path)
    if SIGNATURE not in defs:
        raise VariantError(f"{path} has no {SIGNATURE!r} signature to serve from a variant")
    sig = defs[SIGNATURE]
    spec = SignatureSpec(
        SIGNATURE,
        {k: _spec_of(k, v) for k, v in sorted(sig.inputs.items())},
        {k: _spec_of(k, v) for k, v in sorted(sig.outputs.items())},
    )
    return {SIGNATURE: sig}, spec


class _VariantRuntime:
    """What both variant runtimes share: path, specs, the variant file."""

    runtime_name = ""

    def __init__(self, path: str | Path, threads: int) -> None:
        self.path = str(path)
        self.threads = threads
        self.signature_defs, spec = serving_signature(self.path)
        self.signatures: dict[str, SignatureSpec] = {SIGNATURE: spec}
        self.variant_path = Path(self.path) / VARIANT_FILES[self.runtime_name]
        if not self.variant_path.is_file():
            raise VariantMissingError(
                f"runtime {self.runtime_name!r} needs {self.variant_path.name} in {self.path}; "
                "write it with `primer-train optimize`"
            )

    def _cast(self, inputs: Arrays) -> Arrays:
        specs = self.signatures[SIGNATURE].inputs
        return {k: np.ascontiguousarray(v, dtype=specs[k].dtype) for k, v in inputs.items()}


class TFLiteRuntime(_VariantRuntime):
    """A ``.tflite`` variant on the LiteRT interpreter (XNNPACK on CPU).

    An interpreter is not thread-safe, so each calling thread gets its own (opened on its
    first batch, over the same memory-mapped file): with ``max_concurrent_batches`` > 1
    batches run side by side, one interpreter per executor thread.

    Args:
        path: the version folder.
        runtime_name: ``tflite``, ``tflite-fp16`` or ``tflite-int8``.
        threads: each interpreter's thread count.
    """

    def __init__(self, path: str | Path, runtime_name: str = "tflite", threads: int = 2) -> None:
        self.runtime_name = runtime_name
        super().__init__(path, threads)
        self._runners: dict[int, Any] = {}
        self._lock = threading.Lock()
        self._runner()  # a corrupt file fails the load, not the first request

    def _runner(self) -> Any:
        thread = threading.get_ident()
        runner = self._runners.get(thread)
        if runner is None:
            from ai_edge_litert.interpreter import Interpreter

            try:
                interpreter = Interpreter(
                    model_path=str(self.variant_path), num_threads=self.threads
                )
                runner = interpreter.get_signature_runner(SIGNATURE)
            except Exception as exc:
                raise VariantError(
                    f"{self.variant_path} is not a usable TFLite model: {exc}"
                ) from exc
            with self._lock:
                self._runners[thread] = runner
        return runner

    @property
    def interpreters(self) -> int:
        """Interpreters opened so far (one per thread that ran a batch)."""
        return len(self._runners)

    def predict(self, signature: str, inputs: Arrays) -> Arrays:
        """Run one batch on this thread's interpreter (resized to the batch)."""
        outputs = self._runner()(**self._cast(inputs))
        return {name: np.array(value) for name, value in outputs.items()}

    def close(self) -> None:
        """Drop every interpreter."""
        with self._lock:
            self._runners.clear()


class OnnxRuntime(_VariantRuntime):
    """A ``model.onnx`` variant on ONNX Runtime's CPU provider.

    Inputs and outputs map by the SavedModel signature's sorted keys, the order in which
    ``primer-train optimize`` exported them.

    Args:
        path: the version folder.
        threads: intra-op threads.
    """

    runtime_name = "onnxruntime"

    def __init__(self, path: str | Path, threads: int = 2) -> None:
        super().__init__(path, threads)
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        try:
            self._session: Any = ort.InferenceSession(
                str(self.variant_path), options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:
            raise VariantError(f"{self.variant_path} is not a usable ONNX model: {exc}") from exc
        spec = self.signatures[SIGNATURE]
        onnx_inputs = [i.name for i in self._session.get_inputs()]
        onnx_outputs = [o.name for o in self._session.get_outputs()]
        if len(onnx_inputs) != len(spec.inputs) or len(onnx_outputs) != len(spec.outputs):
            raise VariantError(f"{self.variant_path} does not match the SavedModel's signature")
        self._input_names = dict(zip(spec.inputs, onnx_inputs, strict=True))
        self._output_names = dict(zip(spec.outputs, onnx_outputs, strict=True))

    def session_options(self) -> Any:
        """The session's options as ONNX Runtime applied them (threads, optimization)."""
        return self._session.get_session_options()

    def predict(self, signature: str, inputs: Arrays) -> Arrays:
        """Run one batch."""
        feed = {self._input_names[k]: v for k, v in self._cast(inputs).items()}
        values = self._session.run(list(self._output_names.values()), feed)
        return dict(zip(self._output_names, values, strict=True))

    def close(self) -> None:
        """Drop the session."""
        self._session = None


def open_variant(path: str, runtime_name: str, threads: int) -> TFLiteRuntime | OnnxRuntime:
    """The runtime serving ``runtime_name``'s variant of the version at ``path``."""
    if runtime_name == "onnxruntime":
        return OnnxRuntime(path, threads=threads)
    if runtime_name in VARIANT_FILES:
        return TFLiteRuntime(path, runtime_name=runtime_name, threads=threads)
    raise VariantError(f"unknown runtime {runtime_name!r}; expected one of {', '.join(RUNTIMES)}")
