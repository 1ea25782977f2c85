"""How queued requests become one batch: which may share it, and their rows joined and padded.

The batcher (``service.models.batching``) decides when a batch runs; these functions decide
what it holds. Requests share a batch only when their arrays agree on everything but the
row count (``batch_key``). Their rows are joined in queue order and padded by repeating the
first row up to the next allowed size, as TF Serving pads (``joined_rows``).
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence

import numpy as np

Arrays = dict[str, np.ndarray]


def batch_key(signature: str, inputs: Arrays) -> Hashable:
    """Requests batch together only when signature, names, dtypes and row shapes agree."""
    return signature, tuple((name, a.dtype.str, a.shape[1:]) for name, a in sorted(inputs.items()))


def padded_size(rows: int, allowed: Sequence[int] | None) -> int:
    """The smallest allowed batch size that holds ``rows`` (``rows`` itself when none is
    allowed, or when none is large enough)."""
    for size in allowed or ():
        if size >= rows:
            return size
    return rows


def pad_rows(inputs: Arrays, rows: int, target: int) -> Arrays:
    """Pad every array to ``target`` rows by repeating its first row (as TF Serving does)."""
    if target == rows:
        return inputs
    return {
        name: np.concatenate([a, np.repeat(a[:1], target - rows, axis=0)])
        for name, a in inputs.items()
    }


def joined_rows(requests: Sequence[Arrays], rows: int, target: int) -> Arrays:
    """The requests' inputs joined along the first dimension (``rows`` in all), padded to
    ``target`` rows."""
    if len(requests) == 1:
        inputs = requests[0]
    else:
        inputs = {name: np.concatenate([r[name] for r in requests]) for name in requests[0]}
    return pad_rows(inputs, rows, target)
