"""Train → serve → call with the shipped mnist_dnn on real MNIST, and train/serve parity."""

from __future__ import annotations

import base64
import io
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from contract.model_card import read_model_card
from tests.conftest import MNIST_NPZ, REPO_ROOT, SHIPPED_MODELS, ServerThread, make_settings
from training.data.inputs import model_input
from training.data.layouts import image_file_pixels, read_folders

DIGITS = REPO_ROOT / "loadtest" / "data"


def png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def mnist_test() -> tuple[np.ndarray, np.ndarray]:
    data = np.load(MNIST_NPZ)
    return data["x_test"], data["y_test"]


def test_shipped_model_card_records_accuracy() -> None:
    card = read_model_card(SHIPPED_MODELS / "mnist_dnn" / "1")
    assert card is not None and card.image is not None
    assert card.provenance["test_accuracy"] >= 0.98
    assert card.labels == tuple(str(i) for i in range(10))


def test_sample_digit_through_classify(rest: httpx.Client) -> None:
    for path in [*sorted(DIGITS.glob("digit_*.png"))[:6], DIGITS / "digit_7_0.jpg"]:
        label = path.name.split("_")[1]
        content_type = "image/jpeg" if path.suffix == ".jpg" else "image/png"
        response = rest.post(
            "/v1/models/mnist_dnn:classify?k=3",
            content=path.read_bytes(),
            headers={"Content-Type": content_type},
        )
        assert response.status_code == 200, response.text
        top = response.json()["predictions"]
        assert top[0]["label"] == label, (path.name, top)
        assert len(top) == 3 and top[0]["score"] >= top[1]["score"] >= top[2]["score"]


def test_sample_digit_through_predict_b64_and_floats(rest: httpx.Client, mnist_test) -> None:
    images, labels = mnist_test
    encoded = base64.b64encode(png(images[0])).decode()
    by_b64 = rest.post(
        "/v1/models/mnist_dnn:predict", json={"instances": [{"b64": encoded}]}
    ).json()["predictions"]
    by_floats = rest.post(
        "/v1/models/mnist_dnn:predict", json={"instances": [(images[0] / 255.0).tolist()]}
    ).json()
    assert int(np.argmax(by_b64[0])) == labels[0]
    assert int(np.argmax(by_floats["predictions"][0])) == labels[0]
    np.testing.assert_allclose(by_b64[0], by_floats["predictions"][0], rtol=1e-5, atol=1e-6)


def test_accuracy_over_1000_test_images_via_http(rest: httpx.Client, mnist_test) -> None:
    images, labels = mnist_test[0][:1000], mnist_test[1][:1000]

    def predict(chunk: slice) -> list[int]:
        rows = [{"b64": base64.b64encode(png(image)).decode()} for image in images[chunk]]
        response = rest.post("/v1/models/mnist_dnn:predict", json={"instances": rows})
        response.raise_for_status()
        return list(np.argmax(response.json()["predictions"], axis=1))

    with ThreadPoolExecutor(8) as pool:  # concurrent clients: exercises the batcher too
        chunks = [slice(i, i + 25) for i in range(0, 1000, 25)]
        predicted = [p for part in pool.map(predict, chunks) for p in part]
    accuracy = float(np.mean(np.array(predicted) == labels))
    assert accuracy >= 0.975, accuracy


def test_service_feeds_the_model_what_training_loaded(tmp_path: Path, mnist_test) -> None:
    """Bitwise parity: same PNG file → same model input from the loader and the service."""
    images, labels = mnist_test
    folder = tmp_path / "digits" / str(labels[3])
    folder.mkdir(parents=True)
    (folder / "digit.png").write_bytes(png(images[3]))
    rgb_jpeg = io.BytesIO()
    Image.fromarray(images[3]).convert("RGB").resize((40, 40)).save(rgb_jpeg, format="JPEG")
    (folder / "photo.jpg").write_bytes(rgb_jpeg.getvalue())

    card = read_model_card(SHIPPED_MODELS / "mnist_dnn" / "1")
    entries = sorted(read_folders(tmp_path / "digits"), key=lambda e: e.path.name)
    pixels = np.stack([image_file_pixels(e.path, card.image, e.where) for e in entries])
    trained = model_input(pixels, card.image, (28, 28))

    base = tmp_path / "models"
    shutil.copytree(SHIPPED_MODELS / "mnist_dnn", base / "mnist_dnn")
    thread = ServerThread(make_settings(base)).start()
    try:
        mv = thread.server.manager.resolve("mnist_dnn")
        fed: list[np.ndarray] = []
        run = mv.batcher._run_batch

        def spy(signature: str, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
            fed.append(inputs["image"].copy())
            return run(signature, inputs)

        mv.batcher._run_batch = spy
        with httpx.Client(base_url=thread.rest_url) as client:
            for name in sorted(p.name for p in folder.iterdir()):
                data = (folder / name).read_bytes()
                client.post(
                    "/v1/models/mnist_dnn:classify",
                    content=data,
                    headers={"Content-Type": "image/png"},
                ).raise_for_status()
    finally:
        thread.stop()
    served = np.concatenate(fed)
    assert served.dtype == trained.dtype == np.float32
    assert served.shape == trained.shape == (2, 28, 28)
    assert np.array_equal(served, trained), "service and training disagree"
