"""Seeded subsets: ``--limit``'s few images in file order, and shuffled hold-out splits."""

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


def seeded_split(
    x: np.ndarray, y: np.ndarray, fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None:
    """Shuffle with ``seed``, then hold out ``fraction`` of the rows.

    Returns:
        x_kept, y_kept, x_held, y_held; None when the fraction leaves no rows on a side
        (callers say why in their own terms).
    """
    n_held = round(len(x) * fraction)
    if not 0 < n_held < len(x):
        return None
    order = np.random.default_rng(seed).permutation(len(x))
    held, kept = order[:n_held], order[n_held:]
    return x[kept], y[kept], x[held], y[held]
