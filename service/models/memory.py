"""Process memory around loads and unloads: the Python heap, the C heap, and footprints.

While a version loads, glibc maps each large block on its own (``loading``), so its
variables never settle into heap arenas that an unload could not shrink.

A loaded graph holds many long-lived Python objects. After a load they are moved out of the
garbage collector's sight (``gc.freeze``), so collections stop rescanning them on the hot
path; after an unload the heap is unfrozen and collected so the old version's objects go,
and the C allocator is asked to hand the freed pages back to the kernel (``malloc_trim``):
without it a process keeps the pages of every version it ever unloaded (docs/memory.md).

A version's footprint is estimated before it loads, from its variables' size on disk
scaled by a measured factor, so a memory budget can refuse it before it is read.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import gc
from collections.abc import Callable, Iterator

import tensorflow as tf

from service import process_defaults
from service.models import storage


def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's ``malloc_trim``, or None on a C library without it (musl, macOS)."""
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        return ctypes.CDLL(name).malloc_trim  # type: ignore[no-any-return]
    except (OSError, AttributeError):
        return None


_TRIM = _malloc_trim()


@contextlib.contextmanager
def loading() -> Iterator[None]:
    """While a version loads, each of its large variables is mapped on its own, so that
    unloading it gives the pages back; serving thresholds resume after (process_defaults)."""
    process_defaults.load()
    try:
        yield
    finally:
        process_defaults.serve()


def after_load() -> None:
    """A version was loaded: collect once, then freeze what survives."""
    gc.collect()
    gc.freeze()


def after_unload() -> None:
    """A version was unloaded: free what it left behind, and give the pages back."""
    gc.unfreeze()
    gc.collect()
    gc.freeze()
    release_free_pages()


def release_free_pages() -> bool:
    """Return the C heap's free pages to the kernel; False where the C library cannot."""
    if _TRIM is None:
        return False
    _TRIM(0)
    return True


def variables_bytes(version_dir: str) -> int:
    """The size on disk of a version's ``variables/`` folder (0 when it has none)."""
    folder = storage.join(version_dir, "variables")
    total = 0
    with contextlib.suppress(tf.errors.OpError, OSError):
        for name in tf.io.gfile.listdir(folder):
            with contextlib.suppress(tf.errors.OpError, OSError):
                total += tf.io.gfile.stat(storage.join(folder, name)).length
    return total


def estimate_footprint(version_dir: str, factor: float) -> int:
    """The resident memory a version will take once loaded and warm, estimated."""
    return int(variables_bytes(version_dir) * factor)
