"""The Python heap around loads and unloads.

A loaded graph holds many long-lived Python objects. After a load they are moved out of the
garbage collector's sight (``gc.freeze``), so collections stop rescanning them on the hot
path; after an unload the heap is unfrozen and collected so the old version's objects go.
"""

from __future__ import annotations

import gc


def after_load() -> None:
    """A version was loaded: collect once, then freeze what survives."""
    gc.collect()
    gc.freeze()


def after_unload() -> None:
    """A version was unloaded: let the collector see (and free) what it left behind."""
    gc.unfreeze()
    gc.collect()
    gc.freeze()
