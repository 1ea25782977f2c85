"""The ``frugal`` memory mode: process-wide settings applied before TensorFlow loads.

Both keep a version swap from leaving the process larger than before (docs/memory.md):

- oneDNN's CPU allocator pools every tensor buffer in a BFC arena that never shrinks, so
  an unloaded version's variables stay resident for the life of the process. With
  oneDNN's optimizations off (``TF_ENABLE_ONEDNN_OPTS=0``), TensorFlow allocates through
  malloc. Measured on this project's CPU host, small dense models run faster and
  convolutional ones slower (Eigen's kernels instead of oneDNN's).
- glibc raises its mmap threshold as large blocks are freed, after which variables land in
  heap arenas that fragment and are never returned. A fixed threshold of 1 MiB keeps every
  large tensor (weights, big activations) in its own mapping, given back on free, while
  small tensors stay on the heap; large activations then pay page faults on every call.
  ``TF_ENABLE_ONEDNN_OPTS`` and ``MALLOC_MMAP_THRESHOLD_`` in the environment win.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

ENVIRONMENT = {"TF_ENABLE_ONEDNN_OPTS": "0"}
MMAP_THRESHOLD_BYTES = 1 << 20
_M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter


def apply() -> bool:
    """Apply the defaults; False, changing nothing, once TensorFlow is already imported."""
    if "tensorflow" in sys.modules:
        return False
    for name, value in ENVIRONMENT.items():
        os.environ.setdefault(name, value)
    if "MALLOC_MMAP_THRESHOLD_" not in os.environ:
        set_mmap_threshold(MMAP_THRESHOLD_BYTES)
    return True


def set_mmap_threshold(size: int) -> bool:
    """glibc's ``mallopt(M_MMAP_THRESHOLD, size)``; False on another C library."""
    name = ctypes.util.find_library("c")
    try:
        mallopt = ctypes.CDLL(name).mallopt if name else None
    except (OSError, AttributeError):
        mallopt = None
    return bool(mallopt and mallopt(_M_MMAP_THRESHOLD, size))
