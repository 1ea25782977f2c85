"""Compile and fit a classifier the primer's way, evaluate it, and draw its curves.

Adam, sparse categorical cross-entropy and accuracy; by default the learning rate follows a
cosine decay to zero over the planned epochs (``lr_schedule="constant"`` keeps it fixed, as
the primer does; the decay gains about half a point of MNIST accuracy at three epochs);
a shuffled validation split;
ModelCheckpoint keeps the weights of the best validation epoch, EarlyStopping stops after
``patience`` epochs without improvement, and the best weights are restored before the
test-set evaluation. The history (JSON) and a PNG of the loss/accuracy curves are returned
as bytes so the exporter can store them in the version's ``assets.extra/``.
"""

from __future__ import annotations

import io
import json
import math
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import keras
import numpy as np

MONITOR = "val_accuracy"
LR_SCHEDULES = ("cosine", "constant")


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters and callbacks of one training run.

    Attributes:
        epochs: maximum number of epochs.
        batch_size: mini-batch size.
        validation_split: fraction of the training images held out for validation.
        learning_rate: Adam's (initial) learning rate.
        lr_schedule: ``cosine`` (decay to 0 over ``epochs``) or ``constant``.
        patience: epochs without a better validation accuracy before stopping.
        seed: seeds Python, NumPy and TensorFlow, and the validation split.
        verbose: Keras verbosity (0 silent, 1 progress bar, 2 one line per epoch).
        checkpoint_dir: where ModelCheckpoint writes; None uses a temporary folder.
    """

    epochs: int = 5
    batch_size: int = 128
    validation_split: float = 0.1
    learning_rate: float = 1e-3
    lr_schedule: str = "cosine"
    patience: int = 3
    seed: int = 0
    verbose: int | str = "auto"
    checkpoint_dir: Path | None = None


@dataclass
class TrainResult:
    """What a run produced (the model itself is trained in place).

    Attributes:
        history: per-epoch metrics as Keras reports them (loss, accuracy, val_*).
        epochs_run: epochs actually run (fewer than asked if stopped early).
        best_epoch: 1-based epoch whose weights were kept.
        test_loss: loss on the test set with the kept weights.
        test_accuracy: accuracy on the test set with the kept weights.
        config: the configuration used.
    """

    history: dict[str, list[float]]
    epochs_run: int
    best_epoch: int
    test_loss: float
    test_accuracy: float
    config: TrainConfig = field(default_factory=TrainConfig)

    def to_json(self) -> bytes:
        """The history and results as UTF-8 JSON (``history.json``)."""
        config = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(self.config).items()}
        data: dict[str, Any] = {
            "history": self.history,
            "epochs_run": self.epochs_run,
            "best_epoch": self.best_epoch,
            "monitor": MONITOR,
            "test_loss": self.test_loss,
            "test_accuracy": self.test_accuracy,
            "config": config,
        }
        return (json.dumps(data, indent=2) + "\n").encode("utf-8")


def split_validation(
    x: np.ndarray, y: np.ndarray, fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Shuffle, then hold out ``fraction`` of the rows for validation.

    Keras's own ``validation_split`` takes the *last* rows unshuffled, which for a dataset
    read class by class would validate on the last classes only.

    Returns:
        x_fit, y_fit, x_val, y_val.

    Raises:
        ValueError: the fraction leaves no rows on either side.
    """
    n_val = round(len(x) * fraction)
    if not 0 < n_val < len(x):
        raise ValueError(
            f"validation split {fraction} of {len(x)} training images leaves "
            f"no images on one side; expected 0 < split < 1 and more images"
        )
    order = np.random.default_rng(seed).permutation(len(x))
    val, fit = order[:n_val], order[n_val:]
    return x[fit], y[fit], x[val], y[val]


def compile_model(
    model: keras.Model, learning_rate: float, decay_steps: int | None = None
) -> keras.Model:
    """Compile with Adam, sparse categorical cross-entropy and accuracy (in place).

    Args:
        model: the model to compile.
        learning_rate: Adam's learning rate (the initial one when decaying).
        decay_steps: decay the rate to 0 along a cosine over this many steps; None keeps
            it constant.
    """
    rate: float | keras.optimizers.schedules.LearningRateSchedule = learning_rate
    if decay_steps:
        rate = keras.optimizers.schedules.CosineDecay(learning_rate, decay_steps)
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=rate),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


def train(
    model: keras.Model,
    fit_data: tuple[np.ndarray, np.ndarray],
    val_data: tuple[np.ndarray, np.ndarray],
    test_data: tuple[np.ndarray, np.ndarray],
    config: TrainConfig,
) -> TrainResult:
    """Compile, fit with checkpointing and early stopping, restore the best, evaluate.

    Args:
        model: an uncompiled Keras model; trained in place.
        fit_data: (inputs, labels) to fit on.
        val_data: (inputs, labels) to validate on after every epoch.
        test_data: (inputs, labels) to evaluate the kept weights on.
        config: hyper-parameters.

    Returns:
        The history and the test-set results.
    """
    if config.lr_schedule not in LR_SCHEDULES:
        raise ValueError(f"lr_schedule must be one of {LR_SCHEDULES}, got {config.lr_schedule!r}")
    keras.utils.set_random_seed(config.seed)
    steps = math.ceil(len(fit_data[0]) / config.batch_size) * config.epochs
    compile_model(model, config.learning_rate, steps if config.lr_schedule == "cosine" else None)
    with tempfile.TemporaryDirectory(prefix="primer-train-") as scratch:
        folder = Path(config.checkpoint_dir or scratch)
        folder.mkdir(parents=True, exist_ok=True)
        checkpoint = folder / f"{model.name}.best.weights.h5"
        callbacks = [
            keras.callbacks.ModelCheckpoint(
                str(checkpoint),
                monitor=MONITOR,
                mode="max",
                save_best_only=True,
                save_weights_only=True,
            ),
            keras.callbacks.EarlyStopping(
                monitor=MONITOR, mode="max", patience=config.patience, restore_best_weights=True
            ),
        ]
        fitted = model.fit(
            *fit_data,
            validation_data=val_data,
            epochs=config.epochs,
            batch_size=config.batch_size,
            callbacks=callbacks,
            verbose=config.verbose,
        )
        if checkpoint.exists():
            model.load_weights(str(checkpoint))
    history = {key: [float(v) for v in values] for key, values in fitted.history.items()}
    best_epoch = int(np.argmax(history[MONITOR])) + 1
    test_loss, test_accuracy = model.evaluate(*test_data, batch_size=config.batch_size, verbose=0)
    return TrainResult(
        history=history,
        epochs_run=len(history[MONITOR]),
        best_epoch=best_epoch,
        test_loss=float(test_loss),
        test_accuracy=float(test_accuracy),
        config=config,
    )


def plot_history(result: TrainResult, title: str = "") -> bytes:
    """A PNG of training/validation loss and accuracy per epoch, best epoch marked."""
    from matplotlib.figure import Figure  # the object API: no pyplot, no global backend

    figure = Figure(figsize=(10, 4), dpi=100)
    epochs = range(1, result.epochs_run + 1)
    for axis, metric in zip(figure.subplots(1, 2), ("loss", "accuracy"), strict=True):
        axis.plot(epochs, result.history[metric], marker="o", label=f"train {metric}")
        if f"val_{metric}" in result.history:
            axis.plot(
                epochs, result.history[f"val_{metric}"], marker="o", label=f"validation {metric}"
            )
        axis.axvline(result.best_epoch, color="grey", linestyle="--", label="kept epoch")
        axis.set_xlabel("epoch")
        axis.set_ylabel(metric)
        axis.grid(True, alpha=0.3)
        axis.legend()
    figure.suptitle(f"{title} — test accuracy {result.test_accuracy:.4f}".strip(" —"))
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()
