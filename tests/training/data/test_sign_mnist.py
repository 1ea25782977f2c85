"""The sign-language CNN from a Sign Language MNIST CSV: J/Z, the contract, and serving."""

from __future__ import annotations

import string
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from contract.model_card import ModelCard, read_model_card
from contract.preprocessing import preprocess_image
from tests.conftest import ServerThread, make_settings
from tests.training.helpers import png_bytes, write_sign_mnist_csv
from training.data.classes import absent_classes, apply_absent_policy
from training.data.datasets import load_dataset
from training.data.inputs import image_contract
from training.data.layouts import DatasetError
from training.options import build_parser
from training.run import Outcome, train_and_export

LETTERS = tuple(string.ascii_uppercase)
PRESENT = [i for i in range(26) if i not in (9, 25)]  # J and Z need a motion: no images


@dataclass
class Trained:
    outcome: Outcome
    card: ModelCard
    test_images: np.ndarray
    test_labels: list[int]
    models: Path


@pytest.fixture(scope="module")
def sign(tmp_path_factory: pytest.TempPathFactory) -> Trained:
    root = tmp_path_factory.mktemp("sign")
    write_sign_mnist_csv(root / "sign_mnist_train.csv", PRESENT * 3)
    test_labels = PRESENT[:8]
    images = write_sign_mnist_csv(root / "sign_mnist_test.csv", test_labels, seed=500)
    argv = [
        "sign_cnn", "--data", str(root / "sign_mnist_train.csv"),
        "--test-data", str(root / "sign_mnist_test.csv"),
        "--batch-size", "8", "--max-steps", "4", "--verbose", "0",
        "--rotation", "10", "--zoom", "0.1", "--brightness", "0.1",
        "--model-dir", str(root / "models"),
    ]  # fmt: skip
    outcome = train_and_export(build_parser().parse_args(argv))
    card = read_model_card(outcome.version_dir)
    assert card is not None
    return Trained(outcome, card, images, test_labels, root / "models")


@pytest.fixture(scope="module")
def rest(sign: Trained) -> Iterator[httpx.Client]:
    thread = ServerThread(make_settings(sign.models)).start()
    try:
        with httpx.Client(base_url=thread.rest_url, timeout=60) as client:
            yield client
    finally:
        thread.stop()


def test_export_carries_the_letters_and_the_128x128_grayscale_contract(sign: Trained) -> None:
    card = sign.card
    assert card.labels == LETTERS  # A-Z: J and Z kept as never-trained outputs
    assert card.inputs[0].name == "image" and card.inputs[0].shape == (-1, 128, 128, 1)
    assert card.outputs[0].shape == (-1, 26)
    assert card.image is not None
    assert (card.image.color_mode, card.image.height, card.image.width) == ("grayscale", 128, 128)
    assert (card.image.resample, card.image.normalization) == ("lanczos", "unit")
    provenance = card.provenance
    assert provenance["architecture"] == "sign_cnn" and provenance["dataset"] == "sign_mnist"
    assert provenance["absent_classes"] == ["J", "Z"]
    assert provenance["absent_class_policy"] == "keep"
    assert provenance["parameters"] == 8_402_618  # the primer's 26-way head
    assert provenance["augmentation"]["rotation"] == 10
    assert (sign.outcome.version_dir / "assets.extra" / "labels.txt").read_text().split() == list(
        LETTERS
    )


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_classify_returns_letters_for_png_and_jpeg(
    sign: Trained, rest: httpx.Client, fmt: str
) -> None:
    contract = sign.card.image
    assert contract is not None
    for image in sign.test_images[:4]:
        if fmt == "JPEG":  # a larger RGB photo: the service converts and resizes it
            data = png_bytes(np.asarray(Image.fromarray(image).convert("RGB").resize((64, 64))),
                             "JPEG")  # fmt: skip
        else:
            data = png_bytes(image)
        response = rest.post(
            "/v1/models/sign_cnn:classify?k=26",
            content=data,
            headers={"Content-Type": f"image/{fmt.lower()}"},
        )
        assert response.status_code == 200, response.text
        top = response.json()["predictions"]
        assert sorted(entry["label"] for entry in top) == list(LETTERS)
        expected = sign.outcome.model(preprocess_image(data, contract)[np.newaxis], training=False)
        best = int(np.argmax(expected))
        assert (top[0]["index"], top[0]["label"]) == (best, LETTERS[best])
        assert np.float32(top[0]["score"]) == np.float32(expected[0, best])  # bit for bit


def test_absent_letters_can_leave_the_head(tmp_path: Path) -> None:
    write_sign_mnist_csv(tmp_path / "train.csv", PRESENT * 2)
    write_sign_mnist_csv(tmp_path / "test.csv", [0, 1, 24], seed=7)
    contract = image_contract("grayscale", 28, 28)
    dataset = load_dataset(
        str(tmp_path / "train.csv"), contract, test_data=str(tmp_path / "test.csv")
    )
    assert absent_classes(dataset) == ("J", "Z")
    assert apply_absent_policy(dataset, "keep") is dataset
    dropped = apply_absent_policy(dataset, "drop")
    assert len(dropped.class_names) == 24 and "J" not in dropped.class_names
    assert [dropped.class_names[i] for i in dropped.y_test] == ["A", "B", "Y"]  # renumbered
    assert [dropped.class_names[i] for i in dropped.y_train[:10]] == [
        LETTERS[i] for i in PRESENT[:10]
    ]
    write_sign_mnist_csv(tmp_path / "test_j.csv", [0, 9], seed=7)  # a J in the test set
    with_j = load_dataset(
        str(tmp_path / "train.csv"), contract, test_data=str(tmp_path / "test_j.csv")
    )
    with pytest.raises(DatasetError, match="the test set has images of J"):
        apply_absent_policy(with_j, "drop")


def test_drop_sizes_the_exported_head_to_the_letters_present(tmp_path: Path) -> None:
    write_sign_mnist_csv(tmp_path / "train.csv", PRESENT * 2)
    argv = [
        "sign_cnn", "--data", str(tmp_path / "train.csv"), "--absent-classes", "drop",
        "--input-size", "32x32", "--batch-size", "8", "--max-steps", "1", "--verbose", "0",
        "--model-dir", str(tmp_path / "models"),
    ]  # fmt: skip
    outcome = train_and_export(build_parser().parse_args(argv))
    card = read_model_card(outcome.version_dir)
    assert card is not None and card.outputs[0].shape == (-1, 24)
    assert card.labels == tuple(LETTERS[i] for i in PRESENT)
    assert card.provenance["absent_classes"] == ["J", "Z"]
    assert card.provenance["absent_class_policy"] == "drop"
