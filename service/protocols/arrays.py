"""Array helpers every protocol's tensor decoding shares: typed values, safe reshapes."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from service.errors import InvalidInputError

MAX_RANK = 32
"""Most dimensions a request tensor may have (TensorFlow's own limit is 254)."""


def typed_values(values: Any, dtype: np.dtype, where: str) -> np.ndarray:
    """A protobuf repeated field → ndarray of ``dtype``; integers out of its range are
    invalid input (floats beyond float16/32 range become infinities, as TensorFlow's do)."""
    try:
        with np.errstate(over="ignore", invalid="ignore"):
            return np.asarray(values, dtype=dtype)
    except (OverflowError, ValueError) as exc:
        raise InvalidInputError(f"{where}: a value is out of range for {dtype}: {exc}") from None


def reshape(array: np.ndarray, shape: Sequence[int], name: str) -> np.ndarray:
    """``array.reshape(shape)``, with numpy's refusals (e.g. a zero-size array whose other
    dimensions overflow) reported as invalid input."""
    try:
        return array.reshape(shape)
    except (ValueError, OverflowError) as exc:
        raise InvalidInputError(
            f"input {name!r} cannot take shape {list(shape)[:8]}: {exc}"
        ) from None
