"""Loaders over tiny generated datasets in every layout, image mode and file format."""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from contract.model_card import ImageContract
from contract.preprocessing import normalize, preprocess_image
from tests.training.helpers import IMAGE_KINDS, encode_image
from training.data.datasets import (
    MNIST_CLASSES,
    SIGN_MNIST_CLASSES,
    DatasetError,
    detect_format,
    load_dataset,
    load_mnist,
)
from training.data.layouts import natural_sorted

GRAY = ImageContract("grayscale", 8, 6)
RGB = ImageContract("rgb", 8, 6, resample="bilinear")
CLASSES = ("cat", "dog", "bird")


def _assert_served_identically(
    pixels: np.ndarray, files: list[Path], contract: ImageContract
) -> None:
    """Each loaded image, normalized, is bitwise what the service makes of the file."""
    rows = normalize(pixels, contract)
    served = [preprocess_image(path.read_bytes(), contract) for path in files]
    assert all(row.dtype == np.float32 for row in served)
    assert sorted(row.tobytes() for row in rows) == sorted(row.tobytes() for row in served)


def _check(dataset, contract: ImageContract, n_train: int, n_test: int) -> None:
    assert dataset.x_train.dtype == dataset.x_test.dtype == np.uint8
    assert dataset.x_train.shape == (n_train, contract.height, contract.width, contract.channels)
    assert dataset.x_test.shape == (n_test, contract.height, contract.width, contract.channels)
    assert dataset.y_train.dtype == dataset.y_test.dtype == np.int64


def _index_rows(files: dict[str, list[Path]], base: Path) -> list[tuple[str, str]]:
    return [
        (label, str(path.relative_to(base))) for label, paths in files.items() for path in paths
    ]


@pytest.mark.parametrize("contract", [GRAY, RGB])
def test_folders_layout(image_tree: Callable, tmp_path: Path, contract: ImageContract) -> None:
    files = image_tree()
    dataset = load_dataset(str(tmp_path / "images"), contract, test_split=0.25, seed=1)
    n = len(CLASSES) * len(IMAGE_KINDS)
    _check(dataset, contract, n - round(n * 0.25), round(n * 0.25))
    assert dataset.class_names == ("bird", "cat", "dog")  # sorted folder names
    assert dataset.name == "folders:images"
    labels = np.concatenate([dataset.y_train, dataset.y_test])
    assert np.bincount(labels).tolist() == [len(IMAGE_KINDS)] * 3
    pixels = np.concatenate([dataset.x_train, dataset.x_test])
    _assert_served_identically(pixels, [p for ps in files.values() for p in ps], contract)


def test_folders_labels_follow_their_folder(image_tree: Callable, tmp_path: Path) -> None:
    train = image_tree(tmp_path / "train")
    image_tree(tmp_path / "test")
    dataset = load_dataset(str(tmp_path / "train"), GRAY, test_data=str(tmp_path / "test"))
    _check(dataset, GRAY, 18, 18)
    for label, paths in train.items():
        index = dataset.class_names.index(label)
        rows = dataset.x_train[dataset.y_train == index]
        expected = np.stack([normalize(rows[i], GRAY) for i in range(len(rows))])
        served = np.stack([preprocess_image(p.read_bytes(), GRAY) for p in sorted(paths)])
        np.testing.assert_array_equal(expected, served)


@pytest.mark.parametrize("header", [True, False])
def test_csv_layout(image_tree: Callable, tmp_path: Path, header: bool) -> None:
    files = image_tree()
    index = tmp_path / "labels.csv"
    with index.open("w", newline="") as handle:
        writer = csv.writer(handle)
        if header:
            writer.writerow(["label", "location"])
        writer.writerows(_index_rows(files, tmp_path))
    dataset = load_dataset(str(index), RGB, test_split=0.5)
    _check(dataset, RGB, 9, 9)
    assert dataset.class_names == ("bird", "cat", "dog")
    assert detect_format(str(index)) == "csv"


def test_csv_with_class_list_keeps_its_order(image_tree: Callable, tmp_path: Path) -> None:
    files = image_tree()
    index = tmp_path / "labels.csv"
    index.write_text(
        "\n".join(f"{label},{location}" for label, location in _index_rows(files, tmp_path))
    )
    dataset = load_dataset(str(index), GRAY, class_names=["dog", "cat", "bird", "fish"])
    assert dataset.class_names == ("dog", "cat", "bird", "fish")
    first_dog = files["dog"][0]
    expected = normalize(dataset.x_train, GRAY)
    row = preprocess_image(first_dog.read_bytes(), GRAY)
    matches = [i for i in range(len(expected)) if np.array_equal(expected[i], row)]
    test_matches = [
        i
        for i in range(len(dataset.x_test))
        if np.array_equal(normalize(dataset.x_test[i], GRAY), row)
    ]
    labels = [dataset.y_train[i] for i in matches] + [dataset.y_test[i] for i in test_matches]
    assert labels == [0]


def test_json_layout_with_absolute_and_relative_locations(
    image_tree: Callable, tmp_path: Path
) -> None:
    files = image_tree()
    items = [
        {"label": label, "location": location} for label, location in _index_rows(files, tmp_path)
    ]
    items[0]["location"] = str(tmp_path / items[0]["location"])
    index = tmp_path / "labels.json"
    index.write_text(json.dumps(items))
    dataset = load_dataset(str(index), GRAY, test_split=0.1)
    _check(dataset, GRAY, 16, 2)
    assert dataset.name == "json:labels"


def test_numeric_labels_sort_naturally(tmp_path: Path) -> None:
    items = [{"label": label, "location": f"{label}.png"} for label in (10, 2, 1)]
    for item in items:
        (tmp_path / item["location"]).write_bytes(encode_image("L", "PNG", 0))
    (tmp_path / "labels.json").write_text(json.dumps(items))
    dataset = load_dataset(str(tmp_path / "labels.json"), GRAY, test_split=0.34)
    assert dataset.class_names == ("1", "2", "10")
    assert natural_sorted(["c10", "c2", "b"]) == ["b", "c2", "c10"]


def _sign_mnist_csv(path: Path, labels: list[int]) -> np.ndarray:
    rng = np.random.default_rng(len(labels))
    pixels = rng.integers(0, 256, (len(labels), 784))
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["label", *[f"pixel{i}" for i in range(1, 785)]])
        writer.writerows([label, *row] for label, row in zip(labels, pixels, strict=True))
    return pixels.reshape(-1, 28, 28).astype(np.uint8)


def test_sign_mnist_csv(tmp_path: Path) -> None:
    train = _sign_mnist_csv(tmp_path / "sign_mnist_train.csv", [0, 1, 24, 3, 4, 5])
    _sign_mnist_csv(tmp_path / "sign_mnist_test.csv", [2, 10])
    contract = ImageContract("grayscale", 28, 28)
    dataset = load_dataset(
        str(tmp_path / "sign_mnist_train.csv"),
        contract,
        test_data=str(tmp_path / "sign_mnist_test.csv"),
    )
    _check(dataset, contract, 6, 2)
    assert dataset.class_names == SIGN_MNIST_CLASSES and len(dataset.class_names) == 26
    assert dataset.y_train.tolist() == [0, 1, 24, 3, 4, 5]
    np.testing.assert_array_equal(dataset.x_train[..., 0], train)
    resized = load_dataset(
        str(tmp_path / "sign_mnist_train.csv"), ImageContract("grayscale", 128, 128), test_split=0.5
    )
    _check(resized, ImageContract("grayscale", 128, 128), 3, 3)


def test_mnist_npz(tmp_path: Path, mnist_npz: Path) -> None:
    dataset = load_mnist(mnist_npz, ImageContract("grayscale", 28, 28))
    _check(dataset, ImageContract("grayscale", 28, 28), 60_000, 10_000)
    assert dataset.class_names == MNIST_CLASSES
    assert np.bincount(dataset.y_test).sum() == 10_000
    small = tmp_path / "small.npz"
    with np.load(mnist_npz) as archive:
        np.savez(small, **{key: archive[key][:20] for key in archive.files})
    rgb = load_dataset(str(small), ImageContract("rgb", 32, 32))
    _check(rgb, ImageContract("rgb", 32, 32), 20, 20)


# --- clear errors -----------------------------------------------------------------------


def _error(data: str, **kwargs) -> str:
    with pytest.raises(DatasetError) as info:
        load_dataset(data, GRAY, **kwargs)
    assert "\n" not in str(info.value)
    return str(info.value)


def test_error_missing_data_file(tmp_path: Path) -> None:
    assert "data file not found" in _error(str(tmp_path / "nope.npz"))
    assert "data file not found" in _error(str(tmp_path / "nope.csv"), fmt="csv")


def test_error_empty_folder(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    assert "empty folder" in _error(str(tmp_path / "empty"))
    (tmp_path / "empty" / "cat").mkdir()
    (tmp_path / "empty" / "cat" / "notes.txt").write_text("hi")
    message = _error(str(tmp_path / "empty"))
    assert "cat" in message and "no image files" in message


def test_error_csv_row_without_location(tmp_path: Path) -> None:
    (tmp_path / "a.png").write_bytes(encode_image("L", "PNG", 0))
    index = tmp_path / "labels.csv"
    index.write_text("label,location\ncat,a.png\ndog,\n")
    message = _error(str(index))
    assert f"{index} row 3" in message and "missing image location" in message
    index.write_text("cat,a.png\ndog\n")
    assert "row 2: missing image location" in _error(str(index))


def test_error_csv_row_with_a_non_image(tmp_path: Path) -> None:
    (tmp_path / "a.png").write_bytes(encode_image("L", "PNG", 0))
    (tmp_path / "b.png").write_text("not an image")
    index = tmp_path / "labels.csv"
    index.write_text("cat,a.png\ndog,b.png\n")
    message = _error(str(index))
    assert "row 2" in message and "b.png is not a usable image" in message
    index.write_text("cat,a.png\ndog,missing.png\n")
    message = _error(str(index))
    assert "row 2" in message and "image file not found" in message


def test_error_label_not_in_class_list(tmp_path: Path) -> None:
    (tmp_path / "a.png").write_bytes(encode_image("L", "PNG", 0))
    index = tmp_path / "labels.csv"
    index.write_text("cat,a.png\nzebra,a.png\n")
    message = _error(str(index), class_names=["cat", "dog"])
    assert "row 2" in message and "'zebra' is not in the class list" in message
    assert "'cat', 'dog'" in message


def test_error_test_set_label_outside_training_classes(
    image_tree: Callable, tmp_path: Path
) -> None:
    image_tree(tmp_path / "train", classes=("cat", "dog"))
    image_tree(tmp_path / "test", classes=("cat", "emu"))
    message = _error(str(tmp_path / "train"), test_data=str(tmp_path / "test"))
    assert "'emu' is not in the class list" in message


def test_error_json_shapes(tmp_path: Path) -> None:
    index = tmp_path / "labels.json"
    index.write_text("{not json")
    assert "invalid JSON at line 1" in _error(str(index))
    index.write_text(json.dumps({"label": "cat"}))
    assert "expected a non-empty JSON list" in _error(str(index))
    index.write_text(json.dumps([{"label": "cat"}]))
    assert "item [0]: missing image location" in _error(str(index))


def test_error_sign_mnist_rows(tmp_path: Path) -> None:
    path = tmp_path / "sign.csv"
    _sign_mnist_csv(path, [0, 30])
    assert "row 3: label 30 is not in the class list" in _error(str(path))
    path.write_text("label,pixel1,pixel2\n1,2,3\n")
    assert "row 2: 3 values; expected 785" in _error(str(path))


def test_error_npz_without_mnist_keys(tmp_path: Path) -> None:
    path = tmp_path / "other.npz"
    np.savez(path, x_train=np.zeros((1, 28, 28), np.uint8))
    assert "missing array(s) y_train, x_test, y_test" in _error(str(path))
    path.write_text("garbage")
    assert "not a readable .npz" in _error(str(path))


def test_error_unknown_layout(tmp_path: Path) -> None:
    path = tmp_path / "data.parquet"
    path.write_text("x")
    assert "cannot tell the dataset layout" in _error(str(path))


def test_error_too_few_images_for_a_test_split(tmp_path: Path) -> None:
    (tmp_path / "a.png").write_bytes(encode_image("L", "PNG", 0))
    index = tmp_path / "labels.csv"
    index.write_text("cat,a.png\n")
    assert "cannot be split" in _error(str(index))


def test_limit_reads_a_seeded_random_subset_of_each_split(
    image_tree: Callable, tmp_path: Path
) -> None:
    image_tree(tmp_path / "train")
    image_tree(tmp_path / "test")
    (tmp_path / "train" / "dog" / "broken.png").write_bytes(b"not an image")
    with pytest.raises(DatasetError, match=r"broken\.png is not a usable image"):
        load_dataset(str(tmp_path / "train"), GRAY)
    kwargs = {"test_data": str(tmp_path / "test"), "limit": 8, "seed": 2}
    dataset = load_dataset(str(tmp_path / "train"), GRAY, **kwargs)  # type: ignore[arg-type]
    _check(dataset, GRAY, 8, 8)
    assert dataset.class_names == ("bird", "cat", "dog")  # the class list is not limited
    assert len(set(dataset.y_train.tolist())) > 1  # from anywhere, not the first folder
    again = load_dataset(str(tmp_path / "train"), GRAY, **kwargs)  # type: ignore[arg-type]
    assert np.array_equal(again.x_train, dataset.x_train)  # seeded
    held_out = load_dataset(str(tmp_path / "test"), GRAY, limit=10, test_split=0.2)
    _check(held_out, GRAY, 8, 2)


def test_limit_on_sign_mnist_and_mnist(tmp_path: Path, mnist_npz: Path) -> None:
    _sign_mnist_csv(tmp_path / "sign.csv", list(range(24)))
    dataset = load_dataset(str(tmp_path / "sign.csv"), GRAY, test_split=0.25, limit=8, seed=1)
    _check(dataset, GRAY, 6, 2)
    labels = sorted(np.concatenate([dataset.y_train, dataset.y_test]).tolist())
    assert len(set(labels)) == 8 and labels != list(range(8))  # a random subset of rows
    mnist = load_dataset(str(mnist_npz), ImageContract("grayscale", 28, 28), limit=50)
    assert len(mnist.x_train) == len(mnist.x_test) == 50


def test_parallel_decoding_reports_the_first_bad_row(tmp_path: Path) -> None:
    (tmp_path / "a.png").write_bytes(encode_image("L", "PNG", 0))
    (tmp_path / "bad.png").write_bytes(b"broken")
    rows = ["cat,a.png"] * 40 + ["dog,bad.png", "cat,a.png", "dog,missing.png"]
    (tmp_path / "data.csv").write_text("\n".join(rows) + "\n")
    message = _error(str(tmp_path / "data.csv"))
    assert "row 41:" in message and "bad.png is not a usable image" in message
