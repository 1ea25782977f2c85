"""``--stages``: a sequence of training stages in one ``primer-train`` run.

Format: comma-separated ``PART:EPOCHS[@RATE]`` items, run in order::

    --stages head:3,all:2@1e-5

* ``PART`` is ``head`` (the convolutional frontend frozen, batch norm in inference mode:
  only the classifier head trains) or ``all`` (every layer trains).
* ``EPOCHS`` is the stage's number of epochs (early stopping may end a stage sooner).
* ``@RATE`` is the stage's initial learning rate (default: ``--learning-rate``).

Each stage starts a new optimizer at its own rate, with ``--warmup-epochs`` of linear ramp
then ``--lr-schedule`` over the stage's remaining steps. Without ``--stages`` a run is one
``all`` stage of ``--epochs`` (or one ``head`` stage with ``--freeze-base``).
Importable without TensorFlow.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

PARTS = ("head", "all")


class StageError(ValueError):
    """A ``--stages`` value that does not parse."""


@dataclass(frozen=True)
class Stage:
    """One training stage.

    Attributes:
        part: ``head`` (frontend frozen) or ``all``.
        epochs: epochs in this stage.
        learning_rate: the stage's initial learning rate.
    """

    part: str
    epochs: int
    learning_rate: float

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form for history.json and the backup manifest."""
        return {"part": self.part, "epochs": self.epochs, "learning_rate": self.learning_rate}


def parse_stages(text: str, default_rate: float) -> tuple[Stage, ...]:
    """``head:3,all:2@1e-5`` → stages.

    Raises:
        StageError: an item is not ``PART:EPOCHS[@RATE]`` with a known part, a positive
            whole number of epochs and a positive finite rate.
    """
    stages = []
    for item in text.split(","):
        item = item.strip()
        spec, _, rate_text = item.partition("@")
        part, sep, epochs_text = spec.partition(":")
        expected = (
            f"expected PART:EPOCHS[@RATE] with PART one of {', '.join(PARTS)}, "
            f"e.g. head:3,all:2@1e-5"
        )
        if not sep or part not in PARTS:
            raise StageError(f"--stages item {item!r}: {expected}")
        try:
            epochs = int(epochs_text)
            rate = float(rate_text) if rate_text else default_rate
        except ValueError:
            raise StageError(f"--stages item {item!r}: {expected}") from None
        if epochs <= 0 or not (math.isfinite(rate) and rate > 0):
            raise StageError(
                f"--stages item {item!r}: epochs must be a positive integer and the rate positive"
            )
        stages.append(Stage(part, epochs, rate))
    return tuple(stages)


def default_stages(epochs: int, learning_rate: float, freeze_base: bool) -> tuple[Stage, ...]:
    """The single stage of a run without ``--stages``."""
    return (Stage("head" if freeze_base else "all", epochs, learning_rate),)
