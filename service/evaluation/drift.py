"""Drift and out-of-distribution detection against the reference profile written at export.

Per version, the listener keeps the profile's three histograms (preprocessed pixel
intensities, predicted classes, maximum softmax) over a sliding window of the last
``drift_window`` rows and exports the PSI of each against the reference as
``primer_drift_psi{model,version,feature}``. Each answered row's out-of-distribution score
(``contract.reference_profile.ood_score``) goes into ``primer_ood_score``. Versions
without a profile (or on a remote filesystem) have no drift metrics; the OOD score needs
none.

``answered`` runs on the request path, so it only observes the OOD scores and queues the
rows' pixels and scores (O(1)); the histograms are counted in bulk, one vectorised pass per
``FLUSH_EVERY`` requests or when a PSI gauge is read, and the PSI itself is computed when
the gauge is scraped. Every request stays one entry of the window, so the window slides
exactly as if each were counted on arrival.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from contract.reference_profile import (
    CONFIDENCE_EDGES,
    ReferenceProfile,
    ood_score,
    psi,
    read_profile,
)
from service.config import EvaluationSettings
from service.evaluation.feedback import class_scores
from service.inference.events import Answered
from service.metrics import Metrics

logger = logging.getLogger(__name__)
FEATURES = ("pixels", "classes", "confidence")
FLUSH_EVERY = 64
"""Queued requests counted into the window in one pass (bounds the memory they hold)."""


@dataclass
class _Window:
    """Histograms of the last rows of one version, one entry per request."""

    profile: ReferenceProfile
    entries: deque[tuple[int, dict[str, np.ndarray]]] = field(default_factory=deque)
    sums: dict[str, np.ndarray] = field(default_factory=dict)
    rows: int = 0
    pending: list[tuple[np.ndarray, np.ndarray]] = field(default_factory=list)
    """(pixels, scores) of requests not yet counted, oldest first."""
    pending_rows: int = 0
    exported: bool = False

    def add(self, rows: int, counts: dict[str, np.ndarray], limit: int) -> None:
        self.entries.append((rows, counts))
        self.rows += rows
        for name, value in counts.items():
            self.sums[name] = self.sums.get(name, 0) + value
        while self.rows - self.entries[0][0] >= limit:
            old_rows, old = self.entries.popleft()
            self.rows -= old_rows
            for name, value in old.items():
                self.sums[name] = self.sums[name] - value


class DriftMonitor:
    """The listener exporting PSI gauges and the OOD histogram (see the module docstring).

    Args:
        settings: window sizes.
        metrics: the metric catalogue.
        model_base_path: the repository root, where the profiles are read from.
        model_paths: models served from their own folders (``Settings.model_paths``), read
            when a version is first seen (so a reload's new folders count).
    """

    def __init__(
        self,
        settings: EvaluationSettings,
        metrics: Metrics,
        model_base_path: str,
        model_paths: Callable[[], Mapping[str, str] | None] = lambda: None,
    ):
        self._settings = settings
        self._metrics = metrics
        self._base = Path(model_base_path)
        self._model_paths = model_paths
        self._windows: dict[tuple[str, int], _Window | None] = {}
        self._confidence_edges = np.asarray(CONFIDENCE_EDGES)
        self._ood: dict[tuple[str, int], Any] = {}
        self._lock = threading.Lock()

    def _window(self, model: str, version: int) -> _Window | None:
        key = (model, version)
        if key not in self._windows:
            try:  # once per version; a broken profile only turns drift off for it
                folder = (self._model_paths() or {}).get(model)
                model_dir = Path(folder) if folder else self._base / model
                profile = read_profile(model_dir / str(version))
            except (OSError, ValueError, KeyError, TypeError) as error:
                logger.warning("reference profile of %s:%d unreadable: %s", model, version, error)
                profile = None
            self._windows[key] = None if profile is None else _Window(profile)
        return self._windows[key]

    def answered(self, event: Answered) -> None:
        """Observe OOD scores and queue the rows for the window (see the module docstring)."""
        scores = class_scores(event.outputs)
        if scores is None:
            return
        key = (event.model, event.version)
        histogram_metric = self._ood.get(key)
        if histogram_metric is None:
            histogram_metric = self._metrics.ood_score.labels(event.model, str(event.version))
            self._ood[key] = histogram_metric
        for score in ood_score(scores):
            histogram_metric.observe(float(score))
        window = self._window(event.model, event.version)
        if window is None or len(event.inputs) != 1:
            return
        (pixels,) = event.inputs.values()
        with self._lock:
            window.pending.append((pixels, scores))
            window.pending_rows += len(scores)
            if len(window.pending) >= FLUSH_EVERY:
                self._flush(window)
            if not window.exported and window.rows + window.pending_rows >= (
                self._settings.drift_min_rows
            ):
                self._export(event.model, str(event.version), window)

    def _export(self, model: str, version: str, window: _Window) -> None:
        """Export the window's PSI gauges, computed whenever they are read."""
        window.exported = True
        for feature in FEATURES:
            self._metrics.drift_psi.labels(model, version, feature).set_function(
                lambda feature=feature: self._psi(window, feature)
            )

    def _psi(self, window: _Window, feature: str) -> float:
        with self._lock:  # scrapes may come from another thread
            self._flush(window)
            profile = window.profile
            reference = {
                "pixels": profile.pixels,
                "classes": profile.classes,
                "confidence": profile.confidence,
            }[feature]
            return psi(np.asarray(reference), window.sums[feature])

    def _flush(self, window: _Window) -> None:
        """Count the queued requests into the window, each as its own entry."""
        if not window.pending:
            return
        pending, window.pending, window.pending_rows = window.pending, [], 0
        profile = window.profile
        scores = [s for _, s in pending]
        all_scores = np.concatenate(scores)
        rows = np.fromiter((len(s) for s in scores), np.int64, len(scores))
        counts = {
            "pixels": _per_entry_histograms(
                [p for p, _ in pending], np.asarray(profile.pixel_edges)
            ),
            "classes": _per_entry_bincounts(
                np.argmax(all_scores, axis=1), rows, len(profile.classes)
            ),
            "confidence": _per_entry_histograms(
                np.split(np.max(all_scores, axis=1), np.cumsum(rows)[:-1]),
                self._confidence_edges,
            ),
        }
        for index, count in enumerate(rows):
            window.add(int(count), {name: c[index] for name, c in counts.items()}, self._limit)

    @property
    def _limit(self) -> int:
        return self._settings.drift_window


def _per_entry_bincounts(values: np.ndarray, rows: np.ndarray, size: int) -> np.ndarray:
    """``np.bincount(part, minlength=size)`` of each part of ``values`` (the parts being
    ``rows`` long), as one array of shape (parts, size)."""
    return _bincounts(np.repeat(np.arange(len(rows)), rows), values, len(rows), size)


def _bincounts(entries: np.ndarray, values: np.ndarray, parts: int, size: int) -> np.ndarray:
    return np.bincount(entries * size + values, minlength=parts * size).reshape(parts, size)


def _per_entry_histograms(parts: list[np.ndarray], edges: np.ndarray) -> np.ndarray:
    """``contract.reference_profile.histogram(part, edges)`` of each part, in one pass:
    the same bins (the last one closed, values outside the edges in the end bins, NaN in
    none)."""
    sizes = np.fromiter((p.size for p in parts), np.int64, len(parts))
    values = np.concatenate([p.ravel() for p in parts]).astype(np.float64, copy=False)
    entries = np.repeat(np.arange(len(parts)), sizes)
    if np.isnan(values).any():
        keep = ~np.isnan(values)
        values, entries = values[keep], entries[keep]
    values = np.clip(values, edges[0], edges[-1])
    return _bincounts(entries, _bin_index(values, edges), len(parts), len(edges) - 1)


def _bin_index(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """The bin of each value (all within the edges): ``edges[i] <= v < edges[i + 1]``, the
    last bin closed. Equal-width edges (the pixel histogram's) take arithmetic, put right
    where rounding left a value one bin off, as ``np.histogram`` does: many times faster
    than a binary search over every pixel."""
    bins = len(edges) - 1
    low, high = edges[0], edges[-1]
    if bins < 2 or not np.allclose(np.diff(edges), (high - low) / bins, rtol=1e-9, atol=0):
        return np.minimum(np.searchsorted(edges, values, side="right") - 1, bins - 1)
    index = ((values - low) * (bins / (high - low))).astype(np.intp)
    np.clip(index, 0, bins - 1, out=index)
    index -= values < edges[index]
    index += (values >= edges[index + 1]) & (index < bins - 1)
    return index
