"""The custom training loop: any ``tf.distribute`` strategy, staged, resumable from a backup.

Keras 3's ``model.fit`` fails under ``MultiWorkerMirroredStrategy`` on this TensorFlow, so
strategies, stages and backups train here: the model and each stage's Adam are made under
``strategy.scope()``, batches come from ``strategy.experimental_distribute_dataset``, every
step runs in ``strategy.run`` with ``tf.nn.compute_average_loss``, and the per-replica
loss and hit counts are summed with ``strategy.reduce``.

* The global batch is the per-replica ``batch_size`` x ``num_replicas_in_sync``; an epoch is
  one pass of global batches over the fitting split. The input is sharded across workers
  with the DATA auto-shard policy (:func:`training.distribute.shard_policy`).
* Validation and test run on each worker over the whole split, outside ``strategy.run``
  (the weights are identical everywhere), so they need no collective and cannot hang on
  uneven shards.
* Early stopping (``patience``) ends a stage; the best validation weights are carried into
  the next stage and restored at the end.
* With ``backup_dir``, after every epoch every worker saves a checkpoint (the chief into
  ``backup_dir``, the others into a temporary folder they delete): model, optimizer, epoch,
  best weights, patience count and history. A restarted run restores it and goes on from
  the next epoch; the epoch that was interrupted is run again from its start.
"""

from __future__ import annotations

import json
import math
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from training.distribute import Cluster, shard_policy
from training.fit import MONITOR, TrainConfig, TrainResult
from training.models.transfer import split_layers
from training.schedules import WarmupSchedule
from training.stages import Stage
from training.steps import evaluator, run_epoch, train_step

Log = Callable[[str], None]


@dataclass(frozen=True)
class LoopConfig:
    """How the loop trains.

    Attributes:
        stages: the stages, run in order.
        batch_size: images per replica per step.
        steps_per_epoch: global steps per epoch; None is one pass over the fitting split.
        warmup_epochs: epochs of linear learning-rate ramp at the start of every stage.
        lr_schedule: after the warm-up, ``cosine`` (to 0 at the stage's end) or ``constant``.
        patience: epochs without a better validation accuracy before a stage ends.
        seed: seeds weights and shuffling (the same on every worker).
        max_steps: stop after this many steps in all; None runs every epoch.
        backup_dir: where to keep and find the backup; None keeps none.
        cluster: this process's place in the cluster.
    """

    stages: tuple[Stage, ...]
    batch_size: int = 128
    steps_per_epoch: int | None = None
    warmup_epochs: int = 0
    lr_schedule: str = "cosine"
    patience: int = 3
    seed: int = 0
    max_steps: int | None = None
    backup_dir: Path | None = None
    cluster: Cluster = field(default_factory=Cluster)


@dataclass
class LoopResult(TrainResult):
    """A :class:`TrainResult` with the stages, each epoch's stage and the resume point.

    Attributes:
        epoch_stages: 0-based stage index of each history entry.
        stages: the stages, with their first history entry and the layers they changed.
        resumed_at: the 1-based epoch a resumed run went on from; None if not resumed.
        global_batch: images per step over all replicas.
        replicas: ``num_replicas_in_sync``.
    """

    epoch_stages: list[int] = field(default_factory=list)
    stages: list[dict[str, Any]] = field(default_factory=list)
    resumed_at: int | None = None
    global_batch: int = 0
    replicas: int = 1

    def to_json(self) -> bytes:
        """history.json: :meth:`TrainResult.to_json` plus stages and the resume point."""
        data = json.loads(super().to_json())
        data.update(
            epoch_stages=self.epoch_stages,
            stages=self.stages,
            resumed_at=self.resumed_at,
            global_batch=self.global_batch,
            replicas=self.replicas,
        )
        return (json.dumps(data, indent=2) + "\n").encode("utf-8")


def set_part(model: keras.Model, part: str) -> None:
    """Train the head only (``head``: frontend frozen) or every layer (``all``)."""
    frontend, _ = split_layers(model)
    for layer in model.layers:
        layer.trainable = part == "all" or layer not in frontend


def changed_layers(model: keras.Model, before: list[np.ndarray]) -> list[int]:
    """Indices (in ``model.layers``) of the layers whose weights differ from ``before``."""
    after, changed, i = model.get_weights(), [], 0
    for index, layer in enumerate(model.layers):
        count = len(layer.get_weights())
        pairs = zip(before[i : i + count], after[i : i + count], strict=True)
        if any(not np.array_equal(a, b) for a, b in pairs):
            changed.append(index)
        i += count
    return changed


class _State:
    """Progress and early-stopping state, checkpointed with the model."""

    def __init__(self, model: keras.Model) -> None:
        self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False)  # next planned epoch
        self.steps = tf.Variable(0, dtype=tf.int64, trainable=False)
        self.best_accuracy = tf.Variable(-1.0, dtype=tf.float64, trainable=False)
        self.wait = tf.Variable(0, dtype=tf.int64, trainable=False)
        self.history = tf.Variable("{}", dtype=tf.string, trainable=False)
        self.best = [tf.Variable(tf.zeros_like(w.value), trainable=False) for w in model.weights]

    def trackables(self) -> dict[str, Any]:
        return {
            "epoch": self.epoch,
            "steps": self.steps,
            "best_accuracy": self.best_accuracy,
            "wait": self.wait,
            "history": self.history,
            "best": self.best,
        }

    def keep_best(self, model: keras.Model) -> None:
        for kept, weight in zip(self.best, model.weights, strict=True):
            kept.assign(weight.value)

    def restore_best(self, model: keras.Model) -> None:
        if float(self.best_accuracy.numpy()) < 0:
            return  # no epoch validated yet
        for kept, weight in zip(self.best, model.weights, strict=True):
            weight.assign(kept)


def _save(manager_for: Callable[[Path], tf.train.CheckpointManager], config: LoopConfig) -> None:
    """Every worker saves (saving may use collectives); only the chief's copy is kept."""
    assert config.backup_dir is not None
    if config.cluster.is_chief:
        manager_for(config.backup_dir).save()
        return
    scratch = Path(tempfile.mkdtemp(prefix=f"backup-{config.cluster.task_index}-"))
    try:
        manager_for(scratch).save()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def train_loop(
    strategy: tf.distribute.Strategy,
    build: Callable[[], keras.Model],
    fit_data: tf.data.Dataset,
    fit_size: int,
    val_data: tf.data.Dataset,
    test_data: tf.data.Dataset,
    config: LoopConfig,
    log: Log = print,
) -> tuple[keras.Model, LoopResult]:
    """Train the model ``build`` makes (called under the strategy's scope) through the stages.

    Args:
        strategy: the distribution strategy.
        build: makes the model (and loads any pretrained weights).
        fit_data: endless, shuffled, batched by the *global* batch size.
        fit_size: images in the fitting split (for the steps of one epoch).
        val_data: finite, batched; validated every epoch on every worker.
        test_data: finite, batched; evaluated with the kept weights.
        config: the loop's configuration.
        log: where progress lines go.
    """
    replicas = strategy.num_replicas_in_sync
    global_batch = config.batch_size * replicas
    steps_per_epoch = config.steps_per_epoch or math.ceil(fit_size / global_batch)
    keras.utils.set_random_seed(config.seed)
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = shard_policy()
    log(
        f"global batch {global_batch} = {config.batch_size} per replica x {replicas} "
        f"replica(s) over {config.cluster.workers} worker(s); input sharded by the DATA "
        f"auto-shard policy; {steps_per_epoch} steps per epoch"
    )
    with strategy.scope():
        model = build()
    state = _State(model)
    evaluate = evaluator(model)
    planned = sum(stage.epochs for stage in config.stages)
    resumed_at = None
    if config.backup_dir and tf.train.latest_checkpoint(str(config.backup_dir)):
        latest = tf.train.latest_checkpoint(str(config.backup_dir))
        tf.train.Checkpoint(model=model, **state.trackables()).restore(latest).expect_partial()
        resumed_at = int(state.epoch.numpy()) + 1
        log(
            f"resumed from backup {latest}: epochs 1-{resumed_at - 1} done, "
            f"going on at epoch {resumed_at}"
        )
    history: dict[str, Any] = json.loads(state.history.numpy().decode()) or {
        "loss": [], "accuracy": [], "val_loss": [], "val_accuracy": [], "epoch": [],
        "stage": [], "step_seconds": [], "learning_rate": [],
    }  # fmt: skip
    iterator = iter(strategy.experimental_distribute_dataset(fit_data.with_options(options)))
    stage_records: list[dict[str, Any]] = []
    start = 0
    for index, stage in enumerate(config.stages):
        first, start = start, start + stage.epochs
        record = {"name": f"{index + 1}:{stage.part}", **stage.to_dict(), "first_epoch": first + 1}
        stage_records.append(record)
        if int(state.epoch.numpy()) >= start:
            continue  # done before the resume
        set_part(model, stage.part)
        total = stage.epochs * steps_per_epoch
        schedule = WarmupSchedule(
            stage.learning_rate,
            config.warmup_epochs * steps_per_epoch,
            total,
            config.lr_schedule == "cosine",
        )
        with strategy.scope():
            optimizer = keras.optimizers.Adam(learning_rate=schedule)
            optimizer.build(model.trainable_variables)
        checkpoint = tf.train.Checkpoint(model=model, optimizer=optimizer, **state.trackables())
        resumed_inside = resumed_at is not None and first < resumed_at - 1
        if resumed_at is not None and first == resumed_at - 1 and index > 0:
            state.restore_best(model)  # as if the previous stage had just ended here
            state.wait.assign(0)
        if resumed_inside:
            checkpoint.restore(tf.train.latest_checkpoint(str(config.backup_dir))).expect_partial()
        step = train_step(strategy, model, optimizer)
        before = model.get_weights()
        while (epoch := int(state.epoch.numpy())) < start:
            if config.max_steps and int(state.steps.numpy()) >= config.max_steps:
                break
            log(f"epoch {epoch + 1}/{planned} (stage {record['name']}) started")
            began = time.monotonic()
            budget = config.max_steps - int(state.steps.numpy()) if config.max_steps else None
            ran, loss, hits, count = run_epoch(
                step, iterator, steps_per_epoch, budget, epoch, config
            )
            seconds = (time.monotonic() - began) / ran
            val_loss, val_accuracy = evaluate(val_data)
            rate = float(schedule(optimizer.iterations - 1))
            entry = {"loss": loss / count, "accuracy": hits / count, "val_loss": val_loss,
                     "val_accuracy": val_accuracy, "epoch": epoch + 1, "stage": index,
                     "step_seconds": seconds, "learning_rate": rate}  # fmt: skip
            for key, value in entry.items():
                history[key].append(value)
            state.steps.assign_add(ran)
            if val_accuracy > float(state.best_accuracy.numpy()):
                state.best_accuracy.assign(val_accuracy)
                state.wait.assign(0)
                state.keep_best(model)
            else:
                state.wait.assign_add(1)
            stop = int(state.wait.numpy()) >= config.patience > 0
            state.epoch.assign(start if stop else epoch + 1)
            state.history.assign(json.dumps(history))
            log(
                f"epoch {epoch + 1}/{planned} (stage {record['name']}): loss {loss / count:.4f} "
                f"accuracy {hits / count:.4f} val_loss {val_loss:.4f} val_accuracy "
                f"{val_accuracy:.4f}; {ran} steps, {seconds * 1000:.1f} ms/step"
                + ("; early stop" if stop else "")
            )
            if config.backup_dir:
                _save(
                    lambda d, c=checkpoint: tf.train.CheckpointManager(c, str(d), max_to_keep=2),
                    config,
                )
        changed = None if resumed_inside else changed_layers(model, before)
        record["changed_layers"] = changed
        record["changed_layer_names"] = changed and [model.layers[i].name for i in changed]
        state.restore_best(model)  # the next stage starts from the best weights so far
        state.wait.assign(0)
    state.restore_best(model)  # also when every stage was done before a resume
    epoch_stages = [int(s) for s in history.pop("stage")]
    epochs = history.pop("epoch")
    for number, record in enumerate(stage_records):
        record["first_entry"] = next((i for i, s in enumerate(epoch_stages) if s == number), None)
    test_loss, test_accuracy = evaluate(test_data)
    result = LoopResult(
        history=history,
        epochs_run=len(epochs),
        best_epoch=int(epochs[int(np.argmax(history[MONITOR]))]),
        test_loss=test_loss,
        test_accuracy=test_accuracy,
        config=TrainConfig(
            epochs=planned,
            batch_size=config.batch_size,
            lr_schedule=config.lr_schedule,
            patience=config.patience,
            seed=config.seed,
            steps_per_epoch=steps_per_epoch,
            max_steps=config.max_steps,
        ),
        steps_run=int(state.steps.numpy()),
        epoch_stages=epoch_stages,
        stages=stage_records,
        resumed_at=resumed_at,
        global_batch=global_batch,
        replicas=replicas,
    )
    return model, result
