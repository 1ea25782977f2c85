"""The naive baseline for the benchmark: FastAPI calling the signature once per request.

What many first deployments look like: no batching, JSON lists turned into a tensor per
request, the model called from FastAPI's thread pool. Run with
``MODEL_DIR=models/mnist_dnn/1 uvicorn loadtest.naive_server:app``.
"""

from __future__ import annotations

import base64
import os

import numpy as np
import tensorflow as tf
from fastapi import Body, FastAPI

from contract.model_card import read_model_card
from contract.preprocessing import preprocess_image, to_input_layout

app = FastAPI()
_model_dir = os.environ["MODEL_DIR"]
_signature = tf.saved_model.load(_model_dir).signatures["serving_default"]
_card = read_model_card(_model_dir)
_input_name = next(iter(_signature.structured_input_signature[1]))
_input_shape = [
    -1 if d is None else d
    for d in _signature.structured_input_signature[1][_input_name].shape.as_list()
]


def _to_array(instances: list) -> np.ndarray:
    if isinstance(instances[0], dict) and _card is not None and _card.image is not None:
        rows = np.stack(
            [preprocess_image(base64.b64decode(item["b64"]), _card.image) for item in instances]
        )
        return to_input_layout(rows, _input_shape)
    return np.asarray(instances, dtype=np.float32)


@app.post("/v1/models/{name}:predict")
def predict(name: str, body: dict = Body(...)) -> dict:  # noqa: B008
    outputs = _signature(**{_input_name: tf.constant(_to_array(body["instances"]))})
    return {"predictions": next(iter(outputs.values())).numpy().tolist()}
