"""Classes of the class list that have no training images, and what to do with them.

Sign Language MNIST is the case in point: its class list is A-Z (a label is the letter's
position in the alphabet) but J and Z, signed with a motion, have no images. Two policies:

* ``keep`` (the default): the head keeps one output per listed class, so the outputs are
  A-Z and a label keeps its dataset number. An absent class is never a training target;
  its output learns to stay near zero, and it is never predicted in practice. The
  primer's sign-language CNN has this 26-way head.
* ``drop``: absent classes leave the class list and the head is sized to the classes
  present (24 for Sign Language MNIST); labels are renumbered in class-list order.

Either way ``model.json`` lists one label per output, and the provenance records the
absent classes and the policy.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from training.data.datasets import Dataset
from training.data.layouts import DatasetError

ABSENT_POLICIES = ("keep", "drop")


def absent_classes(dataset: Dataset) -> tuple[str, ...]:
    """Names of the classes without a single training image, in class-list order."""
    counts = np.bincount(dataset.y_train, minlength=len(dataset.class_names))
    return tuple(name for name, n in zip(dataset.class_names, counts, strict=True) if n == 0)


def apply_absent_policy(dataset: Dataset, policy: str) -> Dataset:
    """Keep the class list, or drop the classes without training images and renumber.

    Args:
        dataset: the loaded dataset.
        policy: ``keep`` or ``drop``.

    Returns:
        The dataset unchanged (``keep``), or with a shorter class list and renumbered labels.

    Raises:
        DatasetError: ``drop`` would leave a test image without a class, or fewer than two
            classes would be left.
        ValueError: an unknown policy.
    """
    if policy not in ABSENT_POLICIES:
        raise ValueError(f"absent-class policy must be one of {ABSENT_POLICIES}, got {policy!r}")
    absent = absent_classes(dataset)
    if policy == "keep" or not absent:
        return dataset
    kept = [i for i, name in enumerate(dataset.class_names) if name not in absent]
    if len(kept) < 2:
        raise DatasetError(
            f"{dataset.source}: only {len(kept)} class(es) have training images; "
            f"expected at least 2"
        )
    stray = sorted(set(dataset.class_names[i] for i in dataset.y_test) & set(absent))
    if stray:
        raise DatasetError(
            f"{dataset.source}: the test set has images of {', '.join(stray)}, which have no "
            f"training images; keep them (--absent-classes keep) or remove them from the test set"
        )
    renumber = np.full(len(dataset.class_names), -1, np.int64)
    renumber[kept] = np.arange(len(kept))
    return replace(
        dataset,
        y_train=renumber[dataset.y_train],
        y_test=renumber[dataset.y_test],
        class_names=tuple(dataset.class_names[i] for i in kept),
    )
