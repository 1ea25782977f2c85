"""The custom loop under the default strategy: killed mid-epoch, resumed from the backup;
staged sign CNN transfer learning; a backup of another run refused; the warm-up ramp."""

from __future__ import annotations

import itertools
import json
import signal
from collections.abc import Callable
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from contract.model_card import read_model_card
from tests.training.conftest import MNIST_NPZ
from tests.training.helpers import write_class_folders
from tests.training.workers import lines, start, wait_for
from training.cli import main
from training.loop import LoopConfig, LoopResult, train_loop
from training.models import transfer
from training.models.architectures import mnist_dnn, resnet50, sign_cnn
from training.options import build_parser
from training.run import train_and_export
from training.schedules import WarmupSchedule
from training.stages import Stage


def _history(version_dir: Path) -> dict:
    return json.loads((version_dir / "assets.extra" / "history.json").read_text())


def test_killed_mid_epoch_resumes_from_the_backup(tmp_path: Path) -> None:
    backup, models, log = tmp_path / "backup", tmp_path / "models", tmp_path / "train.log"
    argv = ["mnist_dnn", "--data", str(MNIST_NPZ), "--limit", "3000", "--batch-size", "4",
            "--epochs", "3", "--warmup-epochs", "1", "--backup-dir", str(backup),
            "--model-dir", str(models)]  # fmt: skip
    first = start(argv, log)
    try:
        wait_for(log, "epoch 2/3 (stage 1:all) started", first, timeout=300)
        first.send_signal(signal.SIGKILL)
    finally:
        first.kill()
        first.wait(timeout=60)
    before = lines(log)
    assert not any("epoch 2/3 (stage 1:all): loss" in line for line in before), before  # mid-epoch
    epoch_1 = next(line for line in before if "epoch 1/3 (stage 1:all): loss" in line)
    assert not models.exists() or not any(models.rglob("saved_model.pb"))

    log.write_text("")
    second = start(argv, log)
    assert second.wait(timeout=600) == 0, log.read_text()[-3000:]
    after = lines(log)
    assert any("resumed from backup" in line and "going on at epoch 2" in line for line in after)
    started = [line for line in after if line.endswith("started")]
    assert [s.split("epoch ")[1].split(" ")[0] for s in started] == ["2/3", "3/3"], after
    versions = sorted(p.name for p in (models / "mnist_dnn").iterdir())
    assert versions == ["1"]
    history = _history(models / "mnist_dnn" / "1")
    assert history["resumed_at"] == 2 and history["epochs_run"] == 3
    logged = float(epoch_1.split("val_accuracy ")[1].split(";")[0])
    assert round(history["history"]["val_accuracy"][0], 4) == logged  # epoch 1 kept, not rerun
    assert history["test_accuracy"] > 0.8


def test_a_backup_of_another_architecture_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    backup = tmp_path / "backup"
    common = ["--data", str(MNIST_NPZ), "--limit", "200", "--backup-dir", str(backup),
              "--model-dir", str(tmp_path / "models"), "--verbose", "0"]  # fmt: skip
    assert main(["mnist_dnn", "--epochs", "1", *common]) == 0
    capsys.readouterr()
    assert main(["sign_cnn", "--image-size", "28x28", "--epochs", "1", *common]) == 1
    captured = capsys.readouterr()
    assert captured.err.strip().splitlines() == [
        f"primer-train: error: --backup-dir {backup} holds a backup of another run: its "
        f"architecture is 'mnist_dnn', this run's is 'sign_cnn'; give an empty or new "
        f"--backup-dir, or the options of the run that wrote it"
    ]
    assert "epoch" not in captured.out
    assert sorted(p.name for p in (tmp_path / "models").iterdir()) == ["mnist_dnn"]


def test_bad_stages_and_warmup_are_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    data = ["--data", str(MNIST_NPZ), "--limit", "100"]
    assert main(["mnist_dnn", *data, "--stages", "all:2,frozen:1"]) == 2
    assert "--stages item 'frozen:1': expected PART:EPOCHS[@RATE]" in capsys.readouterr().err
    assert main(["mnist_dnn", *data, "--stages", "head:1"]) == 2
    assert "a head stage freezes the convolutional frontend; mnist_dnn has none" in (
        capsys.readouterr().err
    )
    assert main(["mnist_dnn", *data, "--stages", "all:2", "--warmup-epochs", "2"]) == 2
    assert "--warmup-epochs 2 must be fewer than every stage's epochs" in capsys.readouterr().err


def test_warmup_ramps_linearly_then_decays() -> None:
    cosine = WarmupSchedule(0.1, warmup=4, total=12, cosine=True)
    rates = [float(cosine(step)) for step in range(13)]
    assert rates[:4] == pytest.approx([0.025, 0.05, 0.075, 0.1])
    assert rates[4] == pytest.approx(0.1) and rates[8] == pytest.approx(0.05)
    assert all(a > b for a, b in itertools.pairwise(rates[4:])) and rates[12] < 1e-9
    constant = WarmupSchedule(0.1, warmup=2, total=12, cosine=False)
    assert [float(constant(s)) for s in (0, 1, 2, 11)] == pytest.approx([0.05, 0.1, 0.1, 0.1])


def _frontend_and_head(model: keras.Model) -> tuple[list[np.ndarray], list[int]]:
    """The frontend's variables, and the indices in ``model.layers`` of head layers with weights."""
    frontend, head = transfer.split_layers(model)
    weights = [w.numpy() for layer in frontend for w in layer.weights]
    return weights, [model.layers.index(layer) for layer in head if layer.weights]


@pytest.mark.parametrize(
    "build",
    [sign_cnn, pytest.param(resnet50, marks=pytest.mark.slow)],  # ResNet50: frozen batch norm
    ids=["sign_cnn", "resnet50"],
)
def test_staged_transfer_learning_trains_the_head_then_everything(
    tmp_path: Path, build: Callable[..., keras.Model]
) -> None:
    data = tmp_path / "images"
    write_class_folders(data, ("cat", "dog", "fox"), per_class=8, size=(40, 40))
    source = build((32, 32, 3), 3)
    weights = tmp_path / f"{build.__name__}.weights.h5"
    source.save_weights(weights)
    source_frontend, head_layers = _frontend_and_head(source)
    argv = [build.__name__, "--data", str(data), "--input-size", "32x32", "--color-mode", "rgb",
            "--weights", str(weights),
            "--stages", "head:1,all:1@1e-4", "--batch-size", "4", "--steps-per-epoch", "3",
            "--learning-rate", "0.01", "--backup-dir", str(tmp_path / "backup"),
            "--model-dir", str(tmp_path / "models")]  # fmt: skip
    stage_1 = train_and_export(build_parser().parse_args([*argv, "--max-steps", "3"]))
    frontend_1, _ = _frontend_and_head(stage_1.model)
    assert all(np.array_equal(a, b) for a, b in zip(frontend_1, source_frontend, strict=True))
    history_1 = _history(stage_1.version_dir)
    assert history_1["stages"][0]["changed_layers"] == head_layers  # the head, all of it

    both = train_and_export(build_parser().parse_args(argv))  # resumes into stage 2
    history = _history(both.version_dir)
    assert history["resumed_at"] == 2 and history["epoch_stages"] == [0, 1]
    assert [s["name"] for s in history["stages"]] == ["1:head", "2:all"]
    assert [s["first_entry"] for s in history["stages"]] == [0, 1]
    assert [s["learning_rate"] for s in history["stages"]] == [0.01, 1e-4]
    assert len(history["history"]["val_accuracy"]) == 2
    assert history["stages"][1]["changed_layers"] is not None
    assert set(history["stages"][1]["changed_layers"]) - set(head_layers)  # frontend too
    assert len(history["stages"][1]["changed_layer_names"]) == len(
        history["stages"][1]["changed_layers"]
    )
    assert (both.version_dir / "assets.extra" / "training_curves.png").stat().st_size > 0


def _never_right_run(backup: Path, max_steps: int | None) -> tuple[keras.Model, LoopResult]:
    """mnist_dnn on noise whose validation labels never occur in training (val accuracy 0)."""
    rng = np.random.default_rng(0)
    x = rng.random((64, 28, 28), dtype=np.float32)
    fit = tf.data.Dataset.from_tensor_slices((x, np.arange(64) % 5)).repeat().batch(16)
    val = tf.data.Dataset.from_tensor_slices((x[:16], np.full(16, 9))).batch(16)
    config = LoopConfig(stages=(Stage("all", 6, 1e-3),), batch_size=16, patience=2,
                        max_steps=max_steps, backup_dir=backup)  # fmt: skip
    return train_loop(
        tf.distribute.get_strategy(), mnist_dnn, fit, 64, val, val, config, log=lambda _: None
    )


def test_early_stopping_and_the_best_weights_survive_a_resume(tmp_path: Path) -> None:
    first, _ = _never_right_run(tmp_path / "backup", max_steps=8)  # 2 epochs of 4 steps
    kept_after_first = first.get_weights()
    model, result = _never_right_run(tmp_path / "backup", max_steps=None)
    # Epoch 1 was the best (0 > nothing), epoch 2 did not improve: one more epoch ends the
    # patience of 2. Had the count restarted at the resume, epochs 3 and 4 would both run.
    assert result.resumed_at == 3 and result.history["val_accuracy"] == [0.0, 0.0, 0.0]
    assert result.epochs_run == 3 and result.best_epoch == 1
    assert all(
        np.array_equal(a, b) for a, b in zip(model.get_weights(), kept_after_first, strict=True)
    )


def test_mirrored_strategy_trains_and_exports(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["mnist_dnn", "--data", str(MNIST_NPZ), "--limit", "300", "--epochs", "1",
            "--strategy", "mirrored", "--model-dir", str(tmp_path / "models")]  # fmt: skip
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "mirrored worker 0: global batch 128 = 128 per replica x 1 replica(s)" in out  # no GPU
    history = _history(tmp_path / "models" / "mnist_dnn" / "1")
    assert history["replicas"] == 1 and history["epochs_run"] == 1
    card = read_model_card(tmp_path / "models" / "mnist_dnn" / "1")
    assert card is not None
    provenance = card.provenance
    assert (provenance["strategy"], provenance["replicas"], provenance["global_batch"]) == (
        "mirrored",
        1,
        128,
    )
    assert provenance["stages"][0]["part"] == "all" and provenance["resumed_at_epoch"] is None
