"""Which runtime serves a version: the configured one, a fallback, or ``auto``'s fastest.

``tensorflow`` serves the SavedModel. A named variant runtime serves its file; a variant
that is configured but absent is a load error, one whose file is corrupt is reported as
FAILED and the version is served by TensorFlow. ``auto`` times TensorFlow and every gated
variant (those in the card's ``variants``) on the version's warm-up inputs at the batcher's
batch sizes and keeps the fastest; on a GPU device it keeps TensorFlow.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from service.models.runtime import Runtime
from service.models.runtime_variants import (
    TENSORFLOW,
    VARIANT_FILES,
    VariantError,
    VariantMissingError,
    open_variant,
)
from service.models.warmup import read_warmup_requests, synthetic_batches

logger = logging.getLogger(__name__)

AUTO = "auto"
TIMING_ROUNDS = 3

Opener = Callable[[str, str, int], Runtime]
"""Opens one variant runtime: (version path, runtime name, threads) -> Runtime."""


@dataclass
class Choice:
    """The runtime picked for a version, and what was found on the way."""

    name: str
    runtime: Runtime
    timings_s: dict[str, float] = field(default_factory=dict)
    """auto: seconds per timing pass, by runtime."""
    failed: dict[str, str] = field(default_factory=dict)
    """Variants that could not be opened, with the reason (reported as FAILED)."""


def is_gpu(device: str) -> bool:
    """Whether a TensorFlow device string names a GPU."""
    return "GPU" in device.upper()


def time_runtime(runtime: Runtime, batches: list[tuple[str, dict[str, Any]]]) -> float:
    """Seconds for the fastest of a few passes over the batches (after one untimed pass)."""
    for signature, inputs in batches:
        runtime.predict(signature, inputs)
    best = float("inf")
    for _ in range(TIMING_ROUNDS):
        started = time.perf_counter()
        for signature, inputs in batches:
            runtime.predict(signature, inputs)
        best = min(best, time.perf_counter() - started)
    return best


def choose(
    path: str,
    configured: str,
    device: str,
    tensorflow: Callable[[], Runtime],
    gated: Iterable[str],
    batch_sizes: Iterable[int],
    *,
    threads: int = 2,
    opener: Opener = open_variant,
) -> Choice:
    """Open the runtime that serves the version at ``path`` (blocking).

    Args:
        configured: the model's ``runtime`` setting.
        tensorflow: opens the SavedModel runtime.
        gated: the runtimes whose variants passed the gate (the card's ``variants``).

    Raises:
        VariantMissingError: a configured variant runtime whose file is absent.
        VariantError: an unknown runtime name.
    """
    if configured == TENSORFLOW or (configured == AUTO and is_gpu(device)):
        return Choice(TENSORFLOW, tensorflow())
    if configured != AUTO:
        if configured not in VARIANT_FILES:
            raise VariantError(f"unknown runtime {configured!r}")
        try:
            return Choice(configured, opener(path, configured, threads))
        except VariantMissingError:  # configured but absent: a load error
            raise
        except VariantError as exc:
            logger.warning("%s: variant %s FAILED (%s); serving TensorFlow", path, configured, exc)
            return Choice(TENSORFLOW, tensorflow(), failed={configured: str(exc)})
    return _fastest(path, tensorflow, gated, batch_sizes, threads, opener)


def _fastest(
    path: str,
    tensorflow: Callable[[], Runtime],
    gated: Iterable[str],
    batch_sizes: Iterable[int],
    threads: int,
    opener: Opener,
) -> Choice:
    candidates: dict[str, Runtime] = {TENSORFLOW: tensorflow()}
    failed: dict[str, str] = {}
    for name in gated:
        try:
            candidates[name] = opener(path, name, threads)
        except Exception as exc:
            failed[name] = str(exc)
            logger.warning("%s: variant %s FAILED (%s)", path, name, exc)
    batches = read_warmup_requests(path) or synthetic_batches(candidates[TENSORFLOW], batch_sizes)
    timings: dict[str, float] = {}
    for name, runtime in list(candidates.items()):
        try:
            timings[name] = time_runtime(runtime, batches)
        except Exception as exc:
            failed[name] = f"failed on the warm-up inputs: {exc}"
            runtime.close()
            del candidates[name]
    best = min(timings, key=timings.__getitem__) if timings else TENSORFLOW
    for name, runtime in candidates.items():
        if name != best:
            runtime.close()
    logger.info("%s: runtime auto picked %s; seconds per pass %s", path, best, _shown(timings))
    return Choice(best, candidates[best], timings, failed)


def _shown(timings: Mapping[str, float]) -> str:
    return ", ".join(f"{k}={v:.4f}" for k, v in sorted(timings.items(), key=lambda kv: kv[1]))
