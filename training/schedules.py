"""Learning-rate schedules of the custom loop: a linear warm-up, then the chosen schedule.

``--warmup-epochs N`` ramps the rate linearly from ``rate / warmup_steps`` to ``rate`` over
the first N epochs of every stage; then ``--lr-schedule`` takes over for the stage's
remaining steps: ``cosine`` decays to 0 at the stage's end, ``constant`` keeps ``rate``.
"""

from __future__ import annotations

import math
from typing import Any

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="primer")
class WarmupSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """Linear ramp to ``rate`` over ``warmup`` steps, then cosine decay to 0 or constant."""

    def __init__(self, rate: float, warmup: int, total: int, cosine: bool) -> None:
        self.rate, self.warmup, self.total, self.cosine = rate, warmup, total, cosine

    def __call__(self, step: Any) -> Any:
        step = tf.cast(step, tf.float32)
        ramp = self.rate * (step + 1.0) / max(self.warmup, 1)
        after = tf.maximum(step - self.warmup, 0.0) / max(self.total - self.warmup, 1)
        decayed = self.rate * 0.5 * (1.0 + tf.cos(math.pi * tf.minimum(after, 1.0)))
        rest = decayed if self.cosine else tf.constant(self.rate, tf.float32)
        return tf.where(step < self.warmup, ramp, rest)

    def get_config(self) -> dict[str, Any]:
        return {
            "rate": self.rate,
            "warmup": self.warmup,
            "total": self.total,
            "cosine": self.cosine,
        }
