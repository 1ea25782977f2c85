"""TF1 SavedModels run as TF Serving runs them: a ``tf.compat.v1.Session`` over their graph.

A SavedModel written by TensorFlow 1's ``SavedModelBuilder`` (no object graph, so nothing
for ``tf.saved_model.load`` to rebuild functions from) is loaded with
``tf.compat.v1.saved_model.loader.load``: variables restored (reference variables too),
assets rewritten to the version's ``assets/`` folder, the ``main_op`` or legacy init op
run (table initializers). Each signature then runs as one ``Session`` callable feeding its
input tensors by name and fetching its outputs, which is TF Serving's contract: any tensor
a ``SignatureDef`` names can be fed, including an intermediate one (``x:0`` after a
``parse_example``). ``is_tf1_saved_model`` is how the loader chooses this runtime.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf
from tensorflow.core.protobuf import meta_graph_pb2, saved_model_pb2

from contract.layout import SAVED_MODEL_FILE
from service.errors import InvalidInputError
from service.models import storage
from service.models.runtime import Arrays, tensor_spec
from service.views import SignatureSpec, TensorSpec

logger = logging.getLogger(__name__)
SERVING_TAG = "serve"
_NOISE = ("Graph execution error", "Detected at node", "Node:", "  File ")


def serving_meta_graph(path: str | Path) -> meta_graph_pb2.MetaGraphDef:
    """The SavedModel's meta graph tagged ``serve`` (else its first one)."""
    saved_model = saved_model_pb2.SavedModel()
    saved_model.ParseFromString(storage.read_bytes(storage.join(str(path), SAVED_MODEL_FILE)))
    for graph in saved_model.meta_graphs:
        if SERVING_TAG in graph.meta_info_def.tags:
            return graph
    return saved_model.meta_graphs[0]


def is_tf1_saved_model(path: str | Path) -> bool:
    """Whether a SavedModel was written by TF1's builder (it carries no object graph)."""
    return not serving_meta_graph(path).HasField("object_graph_def")


def _spec(key: str, info: meta_graph_pb2.TensorInfo) -> TensorSpec:
    shape = tf.TensorShape(info.tensor_shape)
    return tensor_spec(key, tf.TensorSpec(shape, tf.dtypes.as_dtype(info.dtype)), info.name)


def _dense(signature: meta_graph_pb2.SignatureDef) -> bool:
    infos = [*signature.inputs.values(), *signature.outputs.values()]
    return all(info.WhichOneof("encoding") == "name" for info in infos)


def client_message(error: tf.errors.OpError) -> str:
    """TensorFlow's message about a bad feed, without graph locations and stack traces."""
    kept = []
    for line in error.message.splitlines():
        if line.startswith(("\t [[", "Original stack trace")):
            break
        if line.strip() and not line.startswith(_NOISE):
            kept.append(line.strip())
    return " ".join(kept) or error.message.splitlines()[0]


class SessionRuntime:
    """A TF1 SavedModel in its own graph and ``tf.compat.v1.Session``.

    Args:
        path: the version folder (holding ``saved_model.pb``).
        device: a TensorFlow device string for ops the graph does not place itself.

    Raises:
        ValueError: the SavedModel has no signature of dense tensors.
    """

    def __init__(self, path: str | Path, device: str = "/device:CPU:0") -> None:
        self.path = str(path)
        self.device = device
        self._graph = tf.Graph()
        config = tf.compat.v1.ConfigProto(allow_soft_placement=True)
        self._session: Any = tf.compat.v1.Session(graph=self._graph, config=config)
        try:
            with self._graph.as_default(), tf.device(device):
                meta_graph = tf.compat.v1.saved_model.loader.load(
                    self._session, [SERVING_TAG], self.path
                )
            self._prepare(meta_graph)
        except BaseException:
            self._session.close()
            raise

    def _prepare(self, meta_graph: meta_graph_pb2.MetaGraphDef) -> None:
        self.signature_defs: dict[str, meta_graph_pb2.SignatureDef] = {}
        self.signatures: dict[str, SignatureSpec] = {}
        self._runs: dict[str, tuple[list[str], list[str], Callable[..., list[Any]]]] = {}
        for key, signature in sorted(meta_graph.signature_def.items()):
            if key.startswith("__"):
                continue
            self.signature_defs[key] = signature
            if not _dense(signature):
                logger.warning(
                    "%s: signature %r has sparse or composite tensors; it is not served",
                    self.path,
                    key,
                )
                continue
            inputs = {name: _spec(name, info) for name, info in sorted(signature.inputs.items())}
            outputs = {name: _spec(name, info) for name, info in sorted(signature.outputs.items())}
            self.signatures[key] = SignatureSpec(key, inputs, outputs)
            feeds = [inputs[name].tensor_name for name in inputs]
            fetches = [outputs[name].tensor_name for name in outputs]
            run = self._session.make_callable(fetches, feed_list=feeds)
            self._runs[key] = (list(inputs), list(outputs), run)
        if not self.signatures:
            raise ValueError(f"{self.path} has no servable signatures")

    def predict(self, signature: str, inputs: Arrays) -> Arrays:
        """Run one batch through a signature (blocking; ``Session`` runs concurrently).

        Raises:
            InvalidInputError: the graph refused the feed (e.g. a tf.Example that does not
                parse, a required feature missing, a value of the wrong type).
        """
        input_names, output_names, run = self._runs[signature]
        try:
            values = run(*[inputs[name] for name in input_names])
        except tf.errors.InvalidArgumentError as exc:
            raise InvalidInputError(client_message(exc)) from None
        except UnicodeDecodeError:  # TensorFlow's message quoted bytes of the feed
            raise InvalidInputError(
                f"signature {signature!r} refused its inputs (TensorFlow's message quoted "
                "bytes that are not UTF-8: e.g. a string input that does not parse as a "
                "serialized tf.Example)"
            ) from None
        return {name: np.asarray(value) for name, value in zip(output_names, values, strict=True)}

    def close(self) -> None:
        """Close the session so TensorFlow frees the graph's memory."""
        self.signatures.clear()
        self._runs.clear()
        session, self._session = self._session, None
        if session is not None:
            session.close()
