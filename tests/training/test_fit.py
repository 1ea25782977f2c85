"""Training: real MNIST accuracy, callbacks, history and curves."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.training.conftest import TrainedMnist
from training.fit import TrainConfig, plot_history, split_validation, train
from training.models.architectures import mnist_dnn


def test_mnist_dnn_reaches_97_5_percent_in_three_epochs(trained_mnist: TrainedMnist) -> None:
    result = trained_mnist.result
    assert result.epochs_run <= 3
    assert result.test_accuracy >= 0.975, result
    _, accuracy = trained_mnist.model.evaluate(
        trained_mnist.x_test, trained_mnist.y_test, verbose=0
    )
    assert accuracy == pytest.approx(result.test_accuracy)


def test_history_checkpoint_and_best_epoch(trained_mnist: TrainedMnist) -> None:
    result = trained_mnist.result
    assert set(result.history) >= {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert all(len(values) == result.epochs_run for values in result.history.values())
    assert result.best_epoch == int(np.argmax(result.history["val_accuracy"])) + 1
    assert (trained_mnist.checkpoint_dir / "mnist_dnn.best.weights.h5").is_file()
    data = json.loads(result.to_json())
    assert data["test_accuracy"] == result.test_accuracy
    assert data["config"]["checkpoint_dir"] == str(trained_mnist.checkpoint_dir)
    png = plot_history(result, "mnist_dnn")
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 10_000


def test_early_stopping_keeps_the_best_epoch() -> None:
    rng = np.random.default_rng(0)
    x = rng.random((96, 4, 4), dtype=np.float32)
    y = rng.integers(0, 2, 96)  # random labels: validation accuracy soon stops improving
    model = mnist_dnn((4, 4), 2)
    config = TrainConfig(epochs=30, batch_size=16, patience=1, verbose=0, seed=3)
    result = train(model, (x[:64], y[:64]), (x[64:80], y[64:80]), (x[80:], y[80:]), config)
    assert result.epochs_run < 30
    _, val_accuracy = model.evaluate(x[64:80], y[64:80], verbose=0)
    assert val_accuracy == pytest.approx(max(result.history["val_accuracy"]))


def test_split_validation_shuffles_before_holding_out() -> None:
    x = np.arange(100)
    y = np.repeat(np.arange(4), 25)  # sorted by class, as a folder dataset is read
    x_fit, y_fit, x_val, y_val = split_validation(x, y, 0.2, seed=0)
    assert len(x_fit) == 80 and len(x_val) == 20
    assert sorted(np.concatenate([x_fit, x_val]).tolist()) == list(range(100))
    assert len(set(y_val.tolist())) > 1  # not just the last class
    np.testing.assert_array_equal(y_fit, y[x_fit])
    with pytest.raises(ValueError, match="validation split"):
        split_validation(x[:3], y[:3], 0.1, seed=0)


def test_unknown_lr_schedule_is_refused() -> None:
    x = np.zeros((4, 2, 2), np.float32)
    y = np.zeros(4, np.int64)
    with pytest.raises(ValueError, match="lr_schedule"):
        train(mnist_dnn((2, 2), 2), (x, y), (x, y), (x, y), TrainConfig(lr_schedule="step"))


def test_steps_per_epoch_and_max_steps_cut_a_run_short() -> None:
    from contract.model_card import ImageContract
    from training.data.pipeline import batches

    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (40, 4, 4, 1), dtype=np.uint8)
    labels = rng.integers(0, 2, 40)
    contract = ImageContract("grayscale", 4, 4)
    fit = batches(pixels[:32], labels[:32], contract, (4, 4), 4, shuffle_seed=0, repeat=True)
    val = batches(pixels[32:], labels[32:], contract, (4, 4), 4)
    model = mnist_dnn((4, 4), 2)
    config = TrainConfig(epochs=3, batch_size=4, steps_per_epoch=2, max_steps=5, patience=9,
                         verbose=0)  # fmt: skip
    result = train(model, fit.dataset, val.dataset, val.dataset, config)
    assert result.epochs_run == 3  # epochs of 2, 2 and (cut short) 1 steps, each validated
    assert result.steps_run == 5
    assert len(result.history["val_accuracy"]) == 3
    with pytest.raises(ValueError, match="needs steps_per_epoch"):
        train(mnist_dnn((4, 4), 2), fit.dataset, val.dataset, val.dataset, TrainConfig(verbose=0))
