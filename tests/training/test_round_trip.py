"""Train with standardization and every augmentation, serve, and compare bit for bit.

The served prediction for an image file must be the training-time prediction: the
in-memory model, in inference mode, on the array the training loader makes of that file.
That holds only if the standardization statistics travel in model.json unchanged and no
augmentation reached the exported signature.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2

from contract.model_card import ModelCard, read_model_card
from tests.conftest import ServerThread, make_settings
from tests.training.helpers import write_class_folders
from training.data.datasets import load_dataset
from training.data.inputs import channel_statistics, model_input
from training.data.layouts import image_file_pixels
from training.fit import split_validation
from training.options import build_parser
from training.run import Outcome, train_and_export

CLASSES = ("circle", "square", "triangle")
AUGMENT = [
    "--flip", "horizontal_and_vertical", "--rotation", "15", "--width-shift", "0.1",
    "--height-shift", "0.1", "--zoom", "0.2", "--brightness", "0.2", "--augment-fraction", "0.5",
]  # fmt: skip


@dataclass
class Served:
    outcome: Outcome
    card: ModelCard
    files: list[Path]
    data: Path
    rest: httpx.Client


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    root = tmp_path_factory.mktemp("shapes")
    tree = write_class_folders(root / "train", CLASSES, per_class=10, size=(40, 36))
    argv = [
        "sign_cnn", "--data", str(root / "train"), "--color-mode", "rgb",
        "--input-size", "32x32", "--normalize", "standardize", *AUGMENT,
        "--batch-size", "4", "--max-steps", "6", "--epochs", "2", "--verbose", "0",
        "--name", "shapes", "--model-dir", str(root / "models"),
    ]  # fmt: skip
    outcome = train_and_export(build_parser().parse_args(argv))
    card = read_model_card(outcome.version_dir)
    assert card is not None and card.image is not None
    files = [paths[i] for paths in tree.values() for i in (0, 1)]  # a PNG and a JPEG each
    thread = ServerThread(make_settings(root / "models")).start()
    try:
        with httpx.Client(base_url=thread.rest_url, timeout=60) as client:
            yield Served(outcome, card, files, root / "train", client)
    finally:
        thread.stop()


def _training_prediction(served: Served, paths: list[Path]) -> np.ndarray:
    """The in-memory model, inference mode, on the training loader's arrays for the files."""
    contract = served.outcome.contract
    pixels = np.stack([image_file_pixels(p, contract, str(p)) for p in paths])
    inputs = model_input(pixels, contract, served.outcome.plan.input_shape)
    return served.outcome.model(inputs, training=False).numpy()


def _predict_b64(served: Served, paths: list[Path]) -> np.ndarray:
    rows = [{"b64": base64.b64encode(p.read_bytes()).decode()} for p in paths]
    response = served.rest.post("/v1/models/shapes:predict", json={"instances": rows})
    assert response.status_code == 200, response.text
    return np.asarray(response.json()["predictions"], dtype=np.float32)


def test_standardization_statistics_come_from_the_training_split_only(served: Served) -> None:
    image = served.card.image
    assert image is not None and image.normalization == "standardize"
    assert image == served.outcome.contract
    assert len(image.mean or ()) == len(image.std or ()) == 3  # per RGB channel
    # The training split: the dataset's training images without the validation images.
    dataset = load_dataset(str(served.data), image, test_split=0.1, seed=0)
    x_fit, _, x_val, _ = split_validation(dataset.x_train, dataset.y_train, 0.1, 0)
    assert np.array_equal(x_fit, served.outcome.x_fit)
    assert (image.mean, image.std) == channel_statistics(x_fit)
    everything = np.concatenate([x_fit, x_val, dataset.x_test])
    assert channel_statistics(everything) != (image.mean, image.std)


def test_served_prediction_equals_the_training_prediction_bit_for_bit(served: Served) -> None:
    for path in served.files:  # one request per image: a batch of one, as in training
        expected = _training_prediction(served, [path])
        got = _predict_b64(served, [path])
        assert got.shape == expected.shape == (1, 3)
        assert got.tobytes() == expected.tobytes(), (path.name, got, expected)


def test_a_batched_request_matches_the_same_batch_in_memory(served: Served) -> None:
    expected = _training_prediction(served, served.files)
    got = _predict_b64(served, served.files)
    assert got.tobytes() == expected.tobytes()


def test_classify_accepts_png_and_jpeg_and_returns_the_class_names(served: Served) -> None:
    for path in served.files:
        kind = "image/png" if path.suffix == ".png" else "image/jpeg"
        response = served.rest.post("/v1/models/shapes:classify?k=3", content=path.read_bytes(),
                                    headers={"Content-Type": kind})  # fmt: skip
        assert response.status_code == 200, response.text
        top = response.json()["predictions"]
        assert sorted(entry["label"] for entry in top) == sorted(CLASSES)
        expected = _training_prediction(served, [path])[0]
        assert top[0]["label"] == CLASSES[int(np.argmax(expected))]
        assert [np.float32(e["score"]) for e in top] == sorted(expected, reverse=True)


def _graph_ops(version_dir: Path) -> set[str]:
    saved = saved_model_pb2.SavedModel()
    saved.ParseFromString((version_dir / "saved_model.pb").read_bytes())
    graph = saved.meta_graphs[0].graph_def
    ops = {node.op for node in graph.node}
    ops |= {node.op for function in graph.library.function for node in function.node_def}
    return ops


def test_augmentation_is_not_part_of_the_exported_model(served: Served) -> None:
    assert served.card.provenance["augmentation"]["flip"] == "horizontal_and_vertical"
    layers = [type(layer).__name__ for layer in served.outcome.model.layers]
    assert not [name for name in layers if name.startswith("Random")], layers
    ops = _graph_ops(served.outcome.version_dir)
    assert "Conv2D" in ops or "_FusedConv2D" in ops  # the graph was read
    assert not [op for op in ops if "Random" in op], sorted(ops)
    signature = tf.saved_model.load(str(served.outcome.version_dir)).signatures["serving_default"]
    contract = served.outcome.contract
    pixels = np.stack([image_file_pixels(p, contract, str(p)) for p in served.files])
    batch = tf.constant(model_input(pixels, contract, served.outcome.plan.input_shape))
    first, second = (signature(image=batch)["probabilities"].numpy() for _ in range(2))
    assert first.tobytes() == second.tobytes()  # deterministic: nothing random inside
    expected = served.outcome.model(batch, training=False).numpy()
    assert first.tobytes() == expected.tobytes()  # the inference-mode output
