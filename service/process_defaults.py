"""Process-wide memory settings for each ``memory_mode``, applied before TensorFlow loads.

Both modes give an unloaded version's memory back (docs/memory.md):

- oneDNN's CPU allocator pools every large tensor buffer in a BFC arena that never shrinks,
  so an unloaded version's variables would stay resident for the life of the process.
  ``TF_ONEDNN_USE_SYSTEM_ALLOCATOR=1`` (``throughput``) keeps oneDNN's kernels but takes
  their buffers from malloc; ``TF_ENABLE_ONEDNN_OPTS=0`` (``frugal``) turns oneDNN off.
- glibc raises its mmap threshold as large blocks are freed, after which variables land in
  heap arenas that fragment. While a version loads, the threshold is 1 MiB, so each of its
  variables gets a mapping of its own, given back on free (``models.memory.loading``).
  While serving, ``throughput`` raises it to 32 MiB (glibc's own ceiling) and trims the
  heap only above 64 MiB, so activations reuse heap pages instead of faulting in fresh
  mappings on every call; ``frugal`` stays at 1 MiB.

``TF_ONEDNN_USE_SYSTEM_ALLOCATOR``, ``TF_ENABLE_ONEDNN_OPTS`` and ``MALLOC_MMAP_THRESHOLD_``
in the environment win over these.

In every mode the cyclic garbage collector runs its youngest generation every
``GC_THRESHOLDS[0]`` container allocations rather than CPython's 700. A small request
allocates a few hundred containers (the parsed JSON's lists, coroutines, futures, dicts), so
at 700 the collector ran every few requests and, under load, took about a seventh of the
event loop's CPU (perf, docs/performance.md). Nearly all of those objects are freed by
reference counting; cycles are still collected, only less often.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import os
import sys
from dataclasses import dataclass, field

_M_TRIM_THRESHOLD = -1  # glibc's mallopt parameters
_M_MMAP_THRESHOLD = -3
MIB = 1 << 20


@dataclass(frozen=True)
class MemoryDefaults:
    """One mode's settings: environment for TensorFlow, and glibc's thresholds."""

    environment: dict[str, str] = field(default_factory=dict)
    loading_mmap_threshold: int = MIB
    """While a version loads: every variable of this size or more is mapped on its own."""
    serving_mmap_threshold: int = MIB
    serving_trim_threshold: int | None = None
    """Free heap above this is returned on ``free`` (None: glibc's default)."""


MODES = {
    "throughput": MemoryDefaults(
        {"TF_ONEDNN_USE_SYSTEM_ALLOCATOR": "1"},
        serving_mmap_threshold=32 * MIB,
        serving_trim_threshold=64 * MIB,
    ),
    "frugal": MemoryDefaults({"TF_ENABLE_ONEDNN_OPTS": "0"}),
}

GC_THRESHOLDS = (20_000, 50, 50)
"""``gc.set_threshold`` for a serving process: generation 0, then 1 and 2."""

_applied: list[MemoryDefaults] = []  # what apply() set; the C library's state is process-wide


def apply(mode: str) -> bool:
    """Apply ``mode``'s defaults and ``GC_THRESHOLDS``; False, changing no memory setting,
    once TensorFlow is imported."""
    gc.set_threshold(*GC_THRESHOLDS)
    if "tensorflow" in sys.modules:
        return False
    defaults = MODES[mode]
    for name, value in defaults.environment.items():
        os.environ.setdefault(name, value)
    if "MALLOC_MMAP_THRESHOLD_" not in os.environ:
        _applied[:] = [defaults]
        serve()
    return True


def applied() -> MemoryDefaults | None:
    """The thresholds ``apply`` chose, or None when it set none (or was never called)."""
    return _applied[0] if _applied else None


def load() -> None:
    """Enter a version's load: large blocks get mappings of their own."""
    if defaults := applied():
        set_mmap_threshold(defaults.loading_mmap_threshold)


def serve() -> None:
    """Back to serving: the mode's serving thresholds."""
    if defaults := applied():
        set_mmap_threshold(defaults.serving_mmap_threshold)
        if defaults.serving_trim_threshold is not None:
            _mallopt(_M_TRIM_THRESHOLD, defaults.serving_trim_threshold)


def set_mmap_threshold(size: int) -> bool:
    """glibc's ``mallopt(M_MMAP_THRESHOLD, size)``; False on another C library."""
    return _mallopt(_M_MMAP_THRESHOLD, size)


def _mallopt(parameter: int, value: int) -> bool:
    name = ctypes.util.find_library("c")
    try:
        mallopt = ctypes.CDLL(name).mallopt if name else None
    except (OSError, AttributeError):
        mallopt = None
    return bool(mallopt and mallopt(parameter, value))
