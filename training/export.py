"""Export a trained model as the next version of a TF Serving model repository, atomically.

Layout written (TF Serving's, so stock TF Serving loads it too)::

    <model_dir>/<name>/<version>/saved_model.pb, variables/, fingerprint.pb
    <model_dir>/<name>/<version>/assets.extra/model.json                  the serving contract
    <model_dir>/<name>/<version>/assets.extra/tf_serving_warmup_requests  one PredictRequest
    <model_dir>/<name>/<version>/assets.extra/labels.txt                  one label per line
    <model_dir>/<name>/<version>/assets.extra/<extra assets>              e.g. history, curves

Everything is written into ``<model_dir>/<name>/.tmp-export-*``, flushed to disk, then
renamed to the all-digit version folder in one ``os.rename``. A repository scan that only
accepts all-digit folder names never sees a half-written version; an export killed before
the rename leaves only a dot-prefixed temporary folder behind.

The SavedModel has one signature, ``serving_default``, taking ``image`` (float32, batch
dimension None, the model's input shape) and returning ``probabilities`` (float32,
(None, classes)); ``model.json`` records the names, dtypes and shapes as read back from
the written SavedModel.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2, prediction_log_pb2

from contract.layout import (
    INPUT_NAME,
    LABELS_PATH,
    OUTPUT_NAME,
    SIGNATURE,
    STAGING_PREFIX,
    WARMUP_PATH,
)
from contract.model_card import ImageContract, ModelCard, TensorInfo, write_model_card
from contract.reference_profile import build_profile, write_profile
from training.repository import (
    ExportError,
    check_model_name,
    check_version_free,
    next_version,
)


def _tensor_info(name: str, spec: tf.TensorSpec) -> TensorInfo:
    return TensorInfo(
        name=name,
        dtype=spec.dtype.name,
        shape=tuple(-1 if d is None else int(d) for d in spec.shape),
    )


def signature_tensors(
    saved_model_dir: str | Path,
) -> tuple[tuple[TensorInfo, ...], tuple[TensorInfo, ...]]:
    """Read back ``serving_default``'s inputs and outputs as the SavedModel declares them."""
    signature = tf.saved_model.load(str(saved_model_dir)).signatures[SIGNATURE]
    _, input_specs = signature.structured_input_signature
    inputs = tuple(_tensor_info(k, s) for k, s in sorted(input_specs.items()))
    outputs = tuple(_tensor_info(k, s) for k, s in sorted(signature.structured_outputs.items()))
    return inputs, outputs


def save_saved_model(model: keras.Model, directory: str | Path) -> None:
    """Write ``model`` as a SavedModel whose ``serving_default`` takes a batch of any size.

    The SavedModel tracks the model's TensorFlow variables and nothing else, so each weight
    is stored (and, when served, loaded) once. Keras' ``ExportArchive`` tracks both the
    Keras variables and the TensorFlow variables under them, which writes every weight
    twice and doubles a served version's memory (docs/memory.md).
    """
    spec = tf.TensorSpec((None, *model.input_shape[1:]), tf.float32, name=INPUT_NAME)
    module = tf.Module()
    module.model_variables = [variable.value for variable in model.variables]

    @tf.function(input_signature=[spec])
    def serve(image: tf.Tensor) -> dict[str, tf.Tensor]:
        return {OUTPUT_NAME: model(image, training=False)}

    module.serve = serve
    tf.saved_model.save(
        module, str(directory), signatures={SIGNATURE: serve.get_concrete_function()}
    )


def write_warmup_requests(
    path: str | Path, model_name: str, input_name: str, batch: np.ndarray
) -> None:
    """Write TF Serving's warm-up file: a TFRecord of one ``PredictionLog`` (one batch)."""
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model_name
    request.model_spec.signature_name = SIGNATURE
    request.inputs[input_name].CopyFrom(tf.make_tensor_proto(batch))
    log = prediction_log_pb2.PredictionLog(
        predict_log=prediction_log_pb2.PredictLog(request=request)
    )
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with tf.io.TFRecordWriter(str(path)) as writer:
        writer.write(log.SerializeToString())


def _fsync_tree(root: Path) -> None:
    for folder, _, files in os.walk(root):
        for name in files:
            with open(os.path.join(folder, name), "rb") as handle:
                os.fsync(handle.fileno())
    _fsync_dir(root)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _publish(staging: Path, base: Path, version: int | None) -> Path:
    """Rename the finished staging folder to its version number (the atomic step)."""
    for _ in range(100):
        number = version if version is not None else next_version(base)
        target = base / str(number)
        if target.exists():
            check_version_free(base, number)  # raises for a pinned version
            continue  # another exporter took this number first: take the next one
        try:
            os.rename(staging, target)
        except OSError:
            if version is not None or not target.exists():
                raise
            continue
        _fsync_dir(base)
        return target
    raise ExportError(f"{base}: could not claim a version number")


def export_model(
    model: keras.Model,
    *,
    model_dir: str | Path,
    name: str,
    image: ImageContract | None,
    labels: Sequence[str],
    provenance: Mapping[str, Any],
    warmup_batch: np.ndarray | None = None,
    version: int | None = None,
    assets: Mapping[str, bytes] | None = None,
    reference_inputs: np.ndarray | None = None,
) -> Path:
    """Export ``model`` as ``<model_dir>/<name>/<version>/``, atomically.

    Args:
        model: the trained Keras model (one input, class probabilities out).
        model_dir: the model repository root (``models``).
        name: the model name (a folder under ``model_dir``).
        image: the image contract the model was trained with.
        labels: class names in output order.
        provenance: architecture, dataset, epochs, test_accuracy, ...; TensorFlow and
            Keras versions and the creation time are added.
        warmup_batch: model-layout inputs for the warm-up request (default one zero row).
        version: pin the version number; None takes the next one.
        assets: extra files for ``assets.extra/`` (name → bytes).
        reference_inputs: model-layout training inputs; with an image contract, their
            reference profile (``contract.reference_profile``) is written for drift detection.

    Returns:
        The published version folder.

    Raises:
        ExportError: the pinned version exists, or the names/shapes do not fit.
    """
    base = Path(model_dir) / check_model_name(name)
    if version is not None:
        check_version_free(base, version)
    base.mkdir(parents=True, exist_ok=True)
    batch = (
        np.zeros((1, *model.input_shape[1:]), np.float32)
        if warmup_batch is None
        else np.asarray(warmup_batch, dtype=np.float32)
    )
    if batch.shape[1:] != tuple(model.input_shape[1:]):
        raise ExportError(
            f"warm-up batch has shape {list(batch.shape)}, model expects "
            f"{[-1, *model.input_shape[1:]]}"
        )
    staging = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=base))
    try:
        save_saved_model(model, staging)
        inputs, outputs = signature_tensors(staging)
        card = ModelCard(
            name=name,
            inputs=inputs,
            outputs=outputs,
            image=image,
            labels=tuple(labels),
            signature=SIGNATURE,
            provenance={
                **provenance,
                "tensorflow": tf.__version__,
                "keras": keras.__version__,
                "created": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            },
        )
        write_model_card(staging, card)
        write_warmup_requests(staging / WARMUP_PATH, name, inputs[0].name, batch)
        extra = staging / LABELS_PATH.parent
        (staging / LABELS_PATH).write_text("".join(f"{label}\n" for label in labels), "utf-8")
        for file_name, data in (assets or {}).items():
            (extra / file_name).write_bytes(data)
        if reference_inputs is not None and image is not None:
            probabilities = model.predict(reference_inputs, batch_size=256, verbose=0)
            write_profile(
                staging, build_profile(reference_inputs, probabilities, image.normalization)
            )
        staging.chmod(0o755)  # mkdtemp made it owner-only; servers may run as another user
        _fsync_tree(staging)
        return _publish(staging, base, version)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
