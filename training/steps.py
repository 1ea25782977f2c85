"""The loop's per-step functions: a distributed training step, an epoch of them, evaluation.

A training step runs ``strategy.run`` on one global batch from the distributed iterator and
sums each replica's loss, hits and images with ``strategy.reduce``. A collective that fails
because a peer worker died (UnavailableError and kin) becomes :class:`PeerLostError`, one
line saying to restart every worker. Evaluation runs on this worker alone.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import keras
import tensorflow as tf

from training.distribute import PeerLostError

if TYPE_CHECKING:
    from training.loop import LoopConfig


def evaluator(model: keras.Model) -> Callable[[tf.data.Dataset], tuple[float, float]]:
    """(mean loss, accuracy) over a finite dataset, on this worker alone."""

    @tf.function(reduce_retracing=True)
    def step(x: tf.Tensor, y: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        probs = model(x, training=False)
        loss = tf.reduce_sum(keras.losses.sparse_categorical_crossentropy(y, probs))
        hits = tf.reduce_sum(tf.cast(tf.argmax(probs, -1) == tf.cast(y, tf.int64), tf.float64))
        return tf.cast(loss, tf.float64), hits

    def evaluate(data: tf.data.Dataset) -> tuple[float, float]:
        loss = hits = count = 0.0
        for x, y in data:
            batch_loss, batch_hits = step(x, y)
            loss, hits = loss + float(batch_loss), hits + float(batch_hits)
            count += int(tf.shape(y)[0])
        return loss / count, hits / count

    return evaluate


def train_step(
    strategy: tf.distribute.Strategy, model: keras.Model, optimizer: keras.optimizers.Optimizer
) -> Callable[[Any], tuple[tf.Tensor, tf.Tensor, tf.Tensor]]:
    def replica_step(x: tf.Tensor, y: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        with tf.GradientTape() as tape:
            probs = model(x, training=True)
            per_example = keras.losses.sparse_categorical_crossentropy(y, probs)
            loss = tf.nn.compute_average_loss(per_example)
            if model.losses:
                loss += tf.nn.scale_regularization_loss(tf.add_n(model.losses))
        variables = model.trainable_variables
        optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables, strict=True))
        hits = tf.reduce_sum(tf.cast(tf.argmax(probs, -1) == tf.cast(y, tf.int64), tf.float32))
        return tf.reduce_sum(per_example), hits, tf.cast(tf.size(y), tf.float32)

    @tf.function
    def step(iterator: Any) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        x, y = next(iterator)
        results = strategy.run(replica_step, args=(x, y))
        loss, hits, count = (
            strategy.reduce(tf.distribute.ReduceOp.SUM, r, axis=None) for r in results
        )
        return loss, hits, count

    return step


_PEER_ERRORS = (tf.errors.UnavailableError, tf.errors.AbortedError, tf.errors.CancelledError)


def _guarded(step: Callable[[Any], Any], iterator: Any, epoch: int, config: LoopConfig) -> Any:
    """One step; a collective that fails because a peer is gone becomes :class:`PeerLostError`."""
    try:
        return step(iterator)
    except _PEER_ERRORS as exc:
        if config.cluster.workers == 1:
            raise
        where = (
            f"the backup in {config.backup_dir}"
            if config.backup_dir
            else "epoch 1 (no --backup-dir)"
        )
        raise PeerLostError(
            f"{config.cluster.name}: a peer worker was lost during epoch {epoch + 1} "
            f"({type(exc).__name__}: {str(exc).splitlines()[0][:200]}); restart every worker "
            f"with the same options to resume from {where}"
        ) from None


def run_epoch(
    step: Callable[[Any], Any],
    iterator: Any,
    steps: int,
    budget: int | None,
    epoch: int,
    config: LoopConfig,
) -> tuple[int, float, float, float]:
    """Run up to ``steps`` steps (fewer if ``budget`` runs out); (steps, loss sum, hits, count)."""
    loss = hits = count = 0.0
    ran = min(steps, budget or steps)
    for _ in range(ran):
        batch_loss, batch_hits, batch_count = _guarded(step, iterator, epoch, config)
        loss, hits = loss + float(batch_loss), hits + float(batch_hits)
        count += float(batch_count)
    return ran, loss, hits, count
