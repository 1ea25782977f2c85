"""primer-train: bad input gives one clear line and a non-zero exit; a small end-to-end run."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from contract.model_card import read_model_card
from tests.training.conftest import REPO_ROOT
from tests.training.helpers import encode_image
from training.cli import build_parser, main


def _fails(capsys: pytest.CaptureFixture[str], argv: list[str], status: int = 1) -> str:
    assert main(argv) == status
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("primer-train: error: ")
    return lines[0]


def _csv(tmp_path: Path, text: str) -> str:
    (tmp_path / "a.png").write_bytes(encode_image("L", "PNG", 0))
    (tmp_path / "b.png").write_bytes(encode_image("RGB", "PNG", 1))
    (tmp_path / "notes.txt").write_text("not an image")
    path = tmp_path / "labels.csv"
    path.write_text(text)
    return str(path)


def test_missing_data_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    line = _fails(capsys, ["mnist_dnn", "--data", str(tmp_path / "mnist.npz")])
    assert f"data file not found: {tmp_path / 'mnist.npz'}" in line


def test_empty_folder(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    line = _fails(capsys, ["mnist_dnn", "--data", str(tmp_path)])
    assert f"{tmp_path}: empty folder; expected one sub-folder of images per class" in line


def test_csv_row_without_location(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    data = _csv(tmp_path, "label,location\ncat,a.png\ndog\n")
    line = _fails(capsys, ["mnist_dnn", "--data", data])
    assert f"{data} row 3: missing image location; expected label,location" in line


def test_csv_row_with_non_image(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    data = _csv(tmp_path, "cat,a.png\ndog,notes.txt\n")
    line = _fails(capsys, ["mnist_dnn", "--data", data])
    assert f"{data} row 2:" in line and "notes.txt is not a usable image" in line


def test_label_not_in_class_list(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    data = _csv(tmp_path, "cat,a.png\nzebra,b.png\n")
    line = _fails(capsys, ["mnist_dnn", "--data", data, "--classes", "cat,dog"])
    assert f"{data} row 2: label 'zebra' is not in the class list" in line


def test_unknown_architecture(capsys: pytest.CaptureFixture[str]) -> None:
    line = _fails(capsys, ["lenet5"], status=2)
    assert "unknown architecture 'lenet5'; expected one of mnist_dnn" in line


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["mnist_dnn", "--epochs", "0"], "--epochs: expected a positive integer, got '0'"),
        (["mnist_dnn", "--validation-split", "1.5"], "--validation-split must be between 0"),
        (["mnist_dnn", "--learning-rate", "-1"], "--learning-rate must be positive"),
        (["mnist_dnn", "--image-size", "big"], "expected HxW like 28x28, got 'big'"),
        (["mnist_dnn", "--color-mode", "rgb"], "takes (height, width) grayscale input"),
        (["mnist_dnn", "--normalization", "zscore"], "invalid choice: 'zscore'"),
        (["mnist_dnn", "--bogus"], "unrecognized arguments: --bogus"),
        ([], "the following arguments are required: architecture"),
        (["mnist_dnn", "--learning-rate", "nan"], "--learning-rate must be positive"),
    ],
)
def test_bad_arguments(capsys: pytest.CaptureFixture[str], argv: list[str], message: str) -> None:
    assert message in _fails(capsys, argv, status=2)


def test_model_name_must_be_a_plain_folder_name(capsys: pytest.CaptureFixture[str]) -> None:
    line = _fails(capsys, ["mnist_dnn", "--name", "../elsewhere"])
    assert "model name '../elsewhere' is not valid" in line


def test_mnist_refuses_a_class_list(capsys: pytest.CaptureFixture[str], mnist_npz: Path) -> None:
    line = _fails(capsys, ["mnist_dnn", "--data", str(mnist_npz), "--classes", "a,b"])
    assert "mnist has fixed classes" in line


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["nope"], "unknown architecture 'nope'"),
        (["mnist_dnn", "--data", "/nonexistent/mnist.npz"], "data file not found"),
    ],
)
def test_console_entry_prints_one_line_without_traceback(argv: list[str], message: str) -> None:
    process = subprocess.run(
        [sys.executable, "-m", "training.cli", *argv],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
    )
    assert process.returncode != 0
    assert process.stderr.count("\n") == 1, process.stderr
    assert process.stderr.startswith("primer-train: error: ") and message in process.stderr
    assert "Traceback" not in process.stderr


def test_help_shows_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    for text in ("--batch-size", "(default: 128)", "--model-dir", "(default: models)", "resnet50"):
        assert text in out


def test_train_and_export_end_to_end(
    capsys: pytest.CaptureFixture[str], image_tree: Callable, tmp_path: Path
) -> None:
    image_tree(tmp_path / "train")
    image_tree(tmp_path / "test")
    argv = [
        "mnist_dnn",
        "--data", str(tmp_path / "train"),
        "--test-data", str(tmp_path / "test"),
        "--image-size", "8x8",
        "--normalization", "standardize",
        "--epochs", "2",
        "--batch-size", "4",
        "--validation-split", "0.2",
        "--verbose", "0",
        "--name", "shapes",
        "--model-dir", str(tmp_path / "models"),
    ]  # fmt: skip
    assert main(argv) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    version = tmp_path / "models" / "shapes" / "1"
    assert f"exported {version}" in out
    card = read_model_card(version)
    assert card is not None
    assert card.labels == ("bird", "cat", "dog")
    assert card.inputs[0].shape == (-1, 8, 8)
    assert card.image is not None and card.image.normalization == "standardize"
    assert card.image.mean is not None and 0 < card.image.mean[0] < 255
    assert card.provenance["dataset"] == "folders:train"
    assert card.provenance["epochs"] == 2
    assert 0 <= card.provenance["test_accuracy"] <= 1
    assert (version / "assets.extra" / "training_curves.png").is_file()
    assert (version / "assets.extra" / "history.json").is_file()
    line = _fails(capsys, [*argv, "--version", "1"])
    assert "version 1 already exists" in line
    assert sorted(p.name for p in version.parent.iterdir()) == ["1"]


def test_help_documents_every_option_with_its_default(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    blocks: dict[str, str] = {}
    current = None
    options_part = out.split("\narchitectures:\n")[0]  # the epilog mentions options too
    for line in options_part.splitlines():
        if line.startswith("  -"):
            current = line.split()[0].rstrip(",")
            blocks[current] = ""
        elif not line.strip() or not line.startswith("    "):
            current = None
        if current:
            blocks[current] += " " + line.strip()
    options = {
        action.option_strings[0]
        for action in build_parser()._actions
        if action.option_strings and action.dest != "help"
    }
    assert options <= set(blocks), options - set(blocks)
    missing = [option for option in options if "(default:" not in blocks[option]]
    assert not missing, missing
    for text in ("--freeze-base", "(default: off)", "--augment-fraction", "(default: 0.5)",
                 "--absent-classes", "(default: keep)", "J (9) and Z (25)", "--input-size",
                 "--normalize", "random subset of every batch"):  # fmt: skip
        assert text in " ".join(out.split()), text


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["vgg16", "--rotation", "-5"], "argument --rotation: expected degrees from 0 to 180"),
        (["vgg16", "--zoom", "1"], "argument --zoom: expected a fraction from 0 to below 1"),
        (["vgg16", "--brightness", "nan"], "--brightness: expected a fraction from 0 to 1, got"),
        (["vgg16", "--augment-fraction", "2"], "--augment-fraction: expected a fraction from 0"),
        (["vgg16", "--width-shift", "wide"], "--width-shift: expected a fraction from 0 to 1"),
        (["vgg16", "--flip", "diagonal"], "argument --flip: invalid choice: 'diagonal'"),
        (["vgg16", "--fill-mode", "mirror"], "argument --fill-mode: invalid choice"),
        (["vgg16", "--max-steps", "0"], "--max-steps: expected a positive integer, got '0'"),
        (["vgg16", "--steps-per-epoch", "-1"], "--steps-per-epoch: expected a positive integer"),
        (["vgg16", "--limit", "some"], "--limit: expected a positive integer, got 'some'"),
        (["vgg16", "--num-classes", "0"], "--num-classes: expected a positive integer"),
        (["vgg16", "--absent-classes", "maybe"], "--absent-classes: invalid choice: 'maybe'"),
        (["vgg16", "--input-size", "16x16"], "too small for vgg16; expected at least 32x32"),
        (["mnist_dnn", "--freeze-base"], "--freeze-base: mnist_dnn has no convolutional frontend"),
        (["resnet50", "--weights", "imagenet"], "has no weights that fit the primer's resnet50"),
        (["vgg16", "--weights", "imagenet", "--color-mode", "grayscale"], "needs --color-mode rgb"),
        (["vgg16", "--weights", "vgg.h5"], "expected a .weights.h5 or .keras file or 'imagenet'"),
    ],
)
def test_bad_option_values(
    capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    assert message in _fails(capsys, argv, status=2)


def test_bad_weights_and_class_counts(
    capsys: pytest.CaptureFixture[str], image_tree: Callable, tmp_path: Path
) -> None:
    image_tree(tmp_path / "images")
    data = ["--data", str(tmp_path / "images"), "--input-size", "32x32"]
    line = _fails(capsys, ["vgg16", *data, "--weights", str(tmp_path / "none.weights.h5")])
    assert f"weights file not found: {tmp_path / 'none.weights.h5'}" in line
    line = _fails(capsys, ["vgg16", *data, "--limit", "6", "--test-split", "0.34"])
    assert "--validation-split 0.1 of 4 training images leaves no images on one side" in line
    line = _fails(capsys, ["vgg16", *data, "--num-classes", "5"], status=2)
    assert "--num-classes 5 does not match the 3 classes of the class list" in line
    from training.models.architectures import sign_cnn

    sign_cnn((32, 32, 3), 3).save_weights(tmp_path / "sign.weights.h5")
    weights = str(tmp_path / "sign.weights.h5")
    line = _fails(capsys, ["vgg16", *data, "--weights", weights, "--model-dir", str(tmp_path)])
    assert f"{weights}: layer conv2d holds [(3, 3, 3, 16), (16,)], vgg16" in line
    assert not (tmp_path / "vgg16").exists()
