"""The committed models/mnist_dnn/1 serves the committed load-test digits correctly."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from contract.model_card import read_model_card
from contract.preprocessing import preprocess_image, to_input_layout
from tests.training.conftest import REPO_ROOT
from training.repository import list_versions

SHIPPED = REPO_ROOT / "models" / "mnist_dnn"


def test_shipped_model_card() -> None:
    assert list_versions(SHIPPED) == [1]
    card = read_model_card(SHIPPED / "1")
    assert card is not None
    assert card.provenance["architecture"] == "mnist_dnn"
    assert card.provenance["test_accuracy"] >= 0.98
    assert card.inputs[0].name == "image" and card.inputs[0].shape == (-1, 28, 28)
    assert card.labels == tuple(str(d) for d in range(10))


def test_shipped_model_reads_the_loadtest_digits() -> None:
    card = read_model_card(SHIPPED / "1")
    assert card is not None and card.image is not None
    files = sorted((REPO_ROOT / "loadtest" / "data").glob("digit_*.*"))
    assert any(f.suffix == ".jpg" for f in files)
    rows = np.stack([preprocess_image(f.read_bytes(), card.image) for f in files])
    batch = to_input_layout(rows, card.inputs[0].shape)
    serving = tf.saved_model.load(str(SHIPPED / "1")).signatures[card.signature]
    scores = serving(**{card.inputs[0].name: tf.constant(batch)})[card.outputs[0].name].numpy()
    predicted = [card.labels[i] for i in scores.argmax(axis=1)]
    assert predicted == [f.stem.split("_")[1] for f in files]
