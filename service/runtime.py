"""One loaded SavedModel: its signatures, their tensor specs, device placement, and predict.

Blocking by design: callers run ``predict`` in a worker thread, never on the event loop.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import tensorflow as tf
from tensorflow.core.protobuf import meta_graph_pb2, saved_model_pb2

from service import storage
from service.errors import InvalidInputError


def read_signature_defs(path: str | Path) -> dict[str, meta_graph_pb2.SignatureDef]:
    """The SignatureDef protos of a SavedModel, as TF Serving reports them in metadata."""
    saved_model = saved_model_pb2.SavedModel()
    saved_model.ParseFromString(storage.read_bytes(storage.join(str(path), "saved_model.pb")))
    graph = saved_model.meta_graphs[0]
    return {key: sig for key, sig in graph.signature_def.items() if not key.startswith("__")}


@dataclass(frozen=True)
class TensorSpec:
    """One signature tensor: the key clients use, its dtype and shape (None = any size)."""

    name: str
    dtype: np.dtype
    shape: tuple[int | None, ...] | None
    tf_dtype: tf.DType
    tensor_name: str = ""

    @cached_property  # read for every request's every input
    def is_string(self) -> bool:
        return self.tf_dtype == tf.string

    def shape_for_display(self) -> list[int]:
        return [-1 if d is None else d for d in self.shape or ()]


def _spec(name: str, spec: tf.TensorSpec, tensor_name: str = "") -> TensorSpec:
    shape = None if spec.shape.rank is None else tuple(spec.shape.as_list())
    dtype = np.dtype(object) if spec.dtype == tf.string else np.dtype(spec.dtype.as_numpy_dtype)
    return TensorSpec(
        name=name, dtype=dtype, shape=shape, tf_dtype=spec.dtype, tensor_name=tensor_name
    )


@dataclass(frozen=True)
class Signature:
    """A callable signature with its input and output specs keyed by client-facing name."""

    name: str
    inputs: dict[str, TensorSpec]
    outputs: dict[str, TensorSpec]
    function: tf.types.experimental.ConcreteFunction


class ModelRuntime:
    """A SavedModel loaded on one device.

    Args:
        path: the version folder (holding ``saved_model.pb``).
        device: a TensorFlow device string, e.g. ``/device:CPU:0``.
    """

    def __init__(self, path: str | Path, device: str = "/device:CPU:0") -> None:
        self.path = str(path)
        self.device = device
        with tf.device(device):
            self._loaded = tf.saved_model.load(self.path)
        self.signature_defs = read_signature_defs(self.path)
        self.signatures: dict[str, Signature] = {}
        for key, function in self._loaded.signatures.items():
            _, kwargs = function.structured_input_signature
            sig_def = self.signature_defs.get(key)
            inputs = {
                name: _spec(name, spec, sig_def.inputs[name].name if sig_def else "")
                for name, spec in sorted(kwargs.items())
            }
            outputs = {
                name: _spec(name, spec, sig_def.outputs[name].name if sig_def else "")
                for name, spec in sorted(function.structured_outputs.items())
            }
            self.signatures[key] = Signature(key, inputs, outputs, function)
        if not self.signatures:
            raise ValueError(f"{self.path} has no serving signatures")

    def signature(self, name: str | None) -> Signature:
        """The named signature (``serving_default`` when none is named)."""
        key = name or "serving_default"
        try:
            return self.signatures[key]
        except KeyError:
            raise InvalidInputError(
                f"signature {key!r} not found; the model has {sorted(self.signatures)}"
            ) from None

    def predict(self, signature: str, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run one batch through a signature (blocking)."""
        function = self.signatures[signature].function
        with tf.device(self.device):
            tensors = {name: tf.convert_to_tensor(value) for name, value in inputs.items()}
            outputs = function(**tensors)
        return {name: tensor.numpy() for name, tensor in outputs.items()}

    def close(self) -> None:
        """Drop the references to the loaded graph so TensorFlow can free it."""
        self.signatures.clear()
        self._loaded = None
