"""Warm-up of a freshly loaded version before it is marked AVAILABLE.

Replays TF Serving's ``assets.extra/tf_serving_warmup_requests`` (a TFRecord file of
``PredictionLog`` protos) when the version ships one, else runs a synthetic zero batch at
each batch size the batcher will form, so the first client never pays for tracing.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import prediction_log_pb2

from contract.layout import SIGNATURE, WARMUP_PATH
from service.models import storage
from service.models.runtime import Runtime

MAX_WARMUP_RECORDS = 1000  # TF Serving's own cap


def read_warmup_requests(version_dir: str | Path) -> list[tuple[str, dict[str, np.ndarray]]]:
    """The (signature, inputs) pairs of a TF Serving warm-up file; [] when it is absent."""
    path = storage.join(str(version_dir), *WARMUP_PATH.parts)
    if not storage.exists(path):
        return []
    requests = []
    for record in tf.data.TFRecordDataset(str(path)).take(MAX_WARMUP_RECORDS):
        log = prediction_log_pb2.PredictionLog.FromString(record.numpy())
        if not log.HasField("predict_log"):
            continue
        request = log.predict_log.request
        inputs = {name: tf.make_ndarray(proto) for name, proto in request.inputs.items()}
        requests.append((request.model_spec.signature_name or SIGNATURE, inputs))
    return requests


def synthetic_batches(
    runtime: Runtime, batch_sizes: Iterable[int]
) -> list[tuple[str, dict[str, np.ndarray]]]:
    """Zero batches for every signature with numeric inputs, at each batch size."""
    batches = []
    for signature in runtime.signatures.values():
        if any(spec.is_string or spec.shape is None for spec in signature.inputs.values()):
            continue
        for size in sorted(set(batch_sizes)):
            batches.append(
                (
                    signature.name,
                    {
                        name: np.zeros((size, *[d or 1 for d in spec.shape[1:]]), dtype=spec.dtype)
                        for name, spec in signature.inputs.items()
                    },
                )
            )
    return batches


def warm_up(runtime: Runtime, version_dir: str | Path, batch_sizes: Iterable[int]) -> int:
    """Run the warm-up requests through the model (blocking); returns how many ran."""
    requests = read_warmup_requests(version_dir) or synthetic_batches(runtime, batch_sizes)
    for signature, inputs in requests:
        runtime.predict(signature, inputs)
    return len(requests)
