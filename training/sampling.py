"""Seeded subsets for ``--limit``: a few images from anywhere in a dataset, in file order."""

from __future__ import annotations

import numpy as np


def subset_indices(n: int, limit: int | None, seed: int) -> np.ndarray:
    """Indices of a seeded random subset of ``limit`` out of ``n`` items, ascending.

    A random subset rather than the first ``limit`` rows: a folder dataset is read class by
    class, so its first rows would all be one class. Ascending order keeps the file order.

    Args:
        n: number of items.
        limit: how many to keep; None (or ``limit >= n``) keeps all.
        seed: seed of the choice.

    Raises:
        ValueError: ``limit`` is not positive.
    """
    if limit is None or limit >= n:
        return np.arange(n)
    if limit <= 0:
        raise ValueError(f"limit must be a positive integer, got {limit}")
    chosen = np.random.default_rng(seed).choice(n, size=limit, replace=False)
    return np.sort(chosen)
