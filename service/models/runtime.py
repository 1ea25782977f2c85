"""One loaded model behind ``predict(signature, inputs) -> outputs``, and its signature specs.

``Runtime`` is the interface every runtime implements (the batcher, warm-up and the core
only ever call it); ``SavedModelRuntime`` is TensorFlow's, for TF2 SavedModels
(``session_runtime.SessionRuntime`` runs TF1 ones). Blocking by
design: callers run ``predict`` in a worker thread, never on the event loop.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import tensorflow as tf
from tensorflow.core.protobuf import meta_graph_pb2, saved_model_pb2

from contract.layout import SAVED_MODEL_FILE
from service.models import storage
from service.views import SignatureSpec, TensorSpec

Arrays = dict[str, np.ndarray]


class Runtime(Protocol):
    """A loaded model version, as the batcher, warm-up and the core use it."""

    path: str
    signatures: Mapping[str, SignatureSpec]
    """Every serving signature, keyed by name."""
    signature_defs: Mapping[str, meta_graph_pb2.SignatureDef]
    """The SavedModel's ``SignatureDef`` protos (TF Serving's metadata)."""

    def predict(self, signature: str, inputs: Arrays) -> Arrays:
        """Run one batch through a signature (blocking)."""
        ...

    def close(self) -> None:
        """Release the model so its memory can be freed."""
        ...


def read_signature_defs(path: str | Path) -> dict[str, meta_graph_pb2.SignatureDef]:
    """The SignatureDef protos of a SavedModel, as TF Serving reports them in metadata (all of
    them, ``__saved_model_init_op`` too)."""
    saved_model = saved_model_pb2.SavedModel()
    saved_model.ParseFromString(storage.read_bytes(storage.join(str(path), SAVED_MODEL_FILE)))
    return dict(saved_model.meta_graphs[0].signature_def.items())


def tensor_spec(name: str, spec: tf.TensorSpec, tensor_name: str = "") -> TensorSpec:
    """Our spec of one TensorFlow tensor spec."""
    shape = None if spec.shape.rank is None else tuple(spec.shape.as_list())
    dtype = np.dtype(object) if spec.dtype == tf.string else np.dtype(spec.dtype.as_numpy_dtype)
    return TensorSpec(
        name=name, dtype=dtype, shape=shape, dtype_name=spec.dtype.name, tensor_name=tensor_name
    )


class SavedModelRuntime:
    """A TF2 SavedModel loaded on one device.

    Args:
        path: the version folder (holding ``saved_model.pb``).
        device: a TensorFlow device string, e.g. ``/device:CPU:0``.
    """

    def __init__(self, path: str | Path, device: str = "/device:CPU:0") -> None:
        self.path = str(path)
        self.device = device
        with tf.device(device):
            self._loaded: Any = tf.saved_model.load(self.path)
        self.signature_defs = read_signature_defs(self.path)
        self.signatures: dict[str, SignatureSpec] = {}
        self._functions: dict[str, Any] = {}
        for key, function in self._loaded.signatures.items():
            _, kwargs = function.structured_input_signature
            sig_def = self.signature_defs.get(key)
            inputs = {
                name: tensor_spec(name, spec, sig_def.inputs[name].name if sig_def else "")
                for name, spec in sorted(kwargs.items())
            }
            outputs = {
                name: tensor_spec(name, spec, sig_def.outputs[name].name if sig_def else "")
                for name, spec in sorted(function.structured_outputs.items())
            }
            self.signatures[key] = SignatureSpec(key, inputs, outputs)
            self._functions[key] = function
        if not self.signatures:
            raise ValueError(f"{self.path} has no serving signatures")

    def predict(self, signature: str, inputs: Arrays) -> Arrays:
        """Run one batch through a signature (blocking)."""
        function = self._functions[signature]
        with tf.device(self.device):
            tensors = {name: tf.convert_to_tensor(value) for name, value in inputs.items()}
            outputs = function(**tensors)
        return {name: tensor.numpy() for name, tensor in outputs.items()}

    def close(self) -> None:
        """Drop the references to the loaded graph so TensorFlow can free it."""
        self.signatures.clear()
        self._functions.clear()
        self._loaded = None
