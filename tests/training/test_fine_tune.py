"""primer-train fine-tunes small VGG16 and ResNet50 on a folder dataset with --freeze-base."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest

from contract.model_card import read_model_card
from tests.training.helpers import write_class_folders
from training.models import transfer
from training.models.architectures import resnet50, vgg16
from training.options import build_parser
from training.run import Outcome, train_and_export

CLASSES = ("cat", "dog", "fox")


@pytest.fixture(scope="module")
def folder_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("flowers") / "train"
    write_class_folders(root, CLASSES, per_class=8, size=(40, 40))
    return root


def _variables(layers: list[keras.layers.Layer]) -> list[np.ndarray]:
    return [v.numpy() for layer in layers for v in layer.weights]


def _fine_tune(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, data: Path, source: keras.Model, *extra: str
) -> tuple[Outcome, list[np.ndarray], list[np.ndarray]]:
    """Run primer-train with --weights/--freeze-base; return the outcome and the weights
    the model had when training started (frontend, head)."""
    weights = tmp_path / f"{source.name}.weights.h5"
    source.save_weights(weights)
    at_start: list[list[np.ndarray]] = []
    freeze = transfer.freeze_frontend

    def spy(model: keras.Model) -> int:  # the last step before fitting
        frozen = freeze(model)
        frontend, head = transfer.split_layers(model)
        at_start.extend([_variables(frontend), _variables(head)])
        return frozen

    monkeypatch.setattr(transfer, "freeze_frontend", spy)
    argv = [
        source.name, "--data", str(data), "--input-size", "32x32",
        "--weights", str(weights), "--freeze-base",
        "--batch-size", "4", "--max-steps", "3", "--learning-rate", "0.01", "--verbose", "0",
        "--model-dir", str(tmp_path / "models"), *extra,
    ]  # fmt: skip
    outcome = train_and_export(build_parser().parse_args(argv))
    return outcome, at_start[0], at_start[1]


def _assert_only_the_head_changed(
    outcome: Outcome, source: keras.Model, frontend_0: list, head_0: list
) -> None:
    frontend, head = transfer.split_layers(outcome.model)
    source_frontend = _variables(transfer.split_layers(source)[0])
    after = _variables(frontend)
    assert len(after) == len(source_frontend) == len(frontend_0)
    for now, loaded, started in zip(after, source_frontend, frontend_0, strict=True):
        assert np.array_equal(now, loaded) and np.array_equal(now, started)  # bit for bit
    changed = [not np.array_equal(a, b) for a, b in zip(_variables(head), head_0, strict=True)]
    assert changed and all(changed), changed  # every head variable was trained


def _assert_exported(outcome: Outcome, arch: str) -> None:
    card = read_model_card(outcome.version_dir)
    assert card is not None and card.image is not None
    assert card.labels == CLASSES
    assert card.inputs[0].shape == (-1, 32, 32, 3) and card.outputs[0].shape == (-1, 3)
    assert (card.image.color_mode, card.image.height, card.image.width) == ("rgb", 32, 32)
    provenance = card.provenance
    assert provenance["architecture"] == arch and provenance["freeze_base"] is True
    assert provenance["pretrained_head"] == "new" and provenance["weights"].endswith(".weights.h5")
    assert provenance["trainable_parameters"] < provenance["parameters"]


def test_vgg16_fine_tunes_only_its_head(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, folder_dataset: Path
) -> None:
    source = vgg16((32, 32, 3), 10)  # pretrained on 10 classes, fine-tuned on 3
    outcome, frontend_0, head_0 = _fine_tune(monkeypatch, tmp_path, folder_dataset, source)
    _assert_only_the_head_changed(outcome, source, frontend_0, head_0)
    _assert_exported(outcome, "vgg16")
    assert outcome.result.epochs_run == 1  # --max-steps 3 ends the first epoch


@pytest.mark.slow
def test_resnet50_fine_tunes_only_its_head_through_the_cli(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, folder_dataset: Path
) -> None:
    source = resnet50((32, 32, 3), 10)
    outcome, frontend_0, head_0 = _fine_tune(monkeypatch, tmp_path, folder_dataset, source)
    _assert_only_the_head_changed(outcome, source, frontend_0, head_0)  # batch norm too
    _assert_exported(outcome, "resnet50")
