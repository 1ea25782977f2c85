"""Compile and fit a classifier the primer's way, evaluate it, and draw its curves.

Adam, sparse categorical cross-entropy and accuracy; by default the learning rate follows a
cosine decay to zero over the planned epochs (``lr_schedule="constant"`` keeps it fixed, as
the primer does; the decay gains about half a point of MNIST accuracy at three epochs);
a shuffled validation split;
ModelCheckpoint keeps the weights of the best validation epoch, EarlyStopping stops after
``patience`` epochs without improvement, and the best weights are restored before the
test-set evaluation. Data come as arrays or as ``tf.data`` pipelines
(:mod:`training.data.pipeline`); ``steps_per_epoch`` and ``max_steps`` cut a run short for smoke
trainings. The history (JSON) and a PNG of the loss/accuracy curves are returned
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
import tensorflow as tf

from training.data.sampling import seeded_split

MONITOR = "val_accuracy"
Data = tuple[np.ndarray, np.ndarray] | tf.data.Dataset
"""Inputs and labels as arrays, or a batched dataset yielding (inputs, labels)."""
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
        steps_per_epoch: batches per epoch; None is one pass over the fitting data.
        max_steps: stop after this many batches in all (mid-epoch if need be; the last
            epoch is still validated); None runs every epoch.
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
    steps_per_epoch: int | None = None
    max_steps: int | None = None


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
        steps_run: training batches run in all epochs.
    """

    history: dict[str, list[float]]
    epochs_run: int
    best_epoch: int
    test_loss: float
    test_accuracy: float
    config: TrainConfig = field(default_factory=TrainConfig)
    steps_run: int = 0

    def to_json(self) -> bytes:
        """The history and results as UTF-8 JSON (``history.json``)."""
        config = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(self.config).items()}
        data: dict[str, Any] = {
            "history": self.history,
            "epochs_run": self.epochs_run,
            "steps_run": self.steps_run,
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
    split = seeded_split(x, y, fraction, seed)
    if split is None:
        raise ValueError(
            f"validation split {fraction} of {len(x)} training images leaves "
            f"no images on one side; expected 0 < split < 1 and more images"
        )
    return split


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


class _StepCounter(keras.callbacks.Callback):
    """Counts batches; stops training once ``limit`` have run (Keras validates the epoch)."""

    def __init__(self, limit: int | None) -> None:
        super().__init__()
        self.limit = limit
        self.steps = 0

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        self.steps += 1
        if self.limit is not None and self.steps >= self.limit:
            self.model.stop_training = True


def _pass_steps(data: Data, batch_size: int) -> int | None:
    if isinstance(data, tuple):
        return math.ceil(len(data[0]) / batch_size)
    cardinality = int(data.cardinality())
    return cardinality if cardinality > 0 else None


def train(
    model: keras.Model,
    fit_data: Data,
    val_data: Data,
    test_data: Data,
    config: TrainConfig,
) -> TrainResult:
    """Compile, fit with checkpointing and early stopping, restore the best, evaluate.

    Args:
        model: an uncompiled Keras model; trained in place.
        fit_data: (inputs, labels) arrays, or a batched ``tf.data.Dataset`` of them (an
            endless one needs ``config.steps_per_epoch``).
        val_data: (inputs, labels) or a finite batched dataset, validated every epoch.
        test_data: (inputs, labels) or a finite batched dataset to evaluate the kept weights.
        config: hyper-parameters.

    Returns:
        The history and the test-set results.

    Raises:
        ValueError: an unknown learning-rate schedule, or an endless dataset without
            ``steps_per_epoch``.
    """
    if config.lr_schedule not in LR_SCHEDULES:
        raise ValueError(f"lr_schedule must be one of {LR_SCHEDULES}, got {config.lr_schedule!r}")
    steps_per_epoch = config.steps_per_epoch or _pass_steps(fit_data, config.batch_size)
    if steps_per_epoch is None:
        raise ValueError("an endless training dataset needs steps_per_epoch")
    keras.utils.set_random_seed(config.seed)
    steps = steps_per_epoch * config.epochs
    if config.max_steps:
        steps = min(steps, config.max_steps)
    compile_model(model, config.learning_rate, steps if config.lr_schedule == "cosine" else None)
    arrays = isinstance(fit_data, tuple)
    with tempfile.TemporaryDirectory(prefix="primer-train-") as scratch:
        folder = Path(config.checkpoint_dir or scratch)
        folder.mkdir(parents=True, exist_ok=True)
        checkpoint = folder / f"{model.name}.best.weights.h5"
        callbacks: list[keras.callbacks.Callback] = [
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
        counter = _StepCounter(config.max_steps)
        callbacks.append(counter)
        fitted = model.fit(
            *(fit_data if arrays else (fit_data,)),
            validation_data=val_data,
            epochs=config.epochs,
            batch_size=config.batch_size if arrays else None,
            steps_per_epoch=config.steps_per_epoch,
            shuffle=arrays,  # a pipeline shuffles itself
            callbacks=callbacks,
            verbose=config.verbose,
        )
        if checkpoint.exists():
            model.load_weights(str(checkpoint))
    history = {key: [float(v) for v in values] for key, values in fitted.history.items()}
    best_epoch = int(np.argmax(history[MONITOR])) + 1
    if isinstance(test_data, tuple):
        test_loss, test_accuracy = model.evaluate(
            *test_data, batch_size=config.batch_size, verbose=0
        )
    else:
        test_loss, test_accuracy = model.evaluate(test_data, verbose=0)
    return TrainResult(
        history=history,
        epochs_run=len(history[MONITOR]),
        best_epoch=best_epoch,
        steps_run=counter.steps,
        test_loss=float(test_loss),
        test_accuracy=float(test_accuracy),
        config=config,
    )


def plot_history(result: TrainResult, title: str = "") -> bytes:
    """A PNG of training/validation loss and accuracy per epoch, best epoch marked.

    For a staged run (``epoch_stages`` on the result) each stage's start is marked too.
    """
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
        stages = getattr(result, "epoch_stages", [])  # a staged run (training.loop)
        for i in range(1, len(stages)):
            if stages[i] != stages[i - 1]:
                axis.axvline(i + 0.5, color="red", linestyle=":", label=f"stage {stages[i] + 1}")
        axis.set_xlabel("epoch")
        axis.set_ylabel(metric)
        axis.grid(True, alpha=0.3)
        axis.legend()
    figure.suptitle(f"{title} — test accuracy {result.test_accuracy:.4f}".strip(" —"))
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()
