"""Drift and out-of-distribution detection against the reference profile written at export.

The listener only hands each answered event to the ``drift`` lane of the side-work executor
(``service.inference.side_work``); the histograms are computed there, in bulk, while the
server is not busy. Under saturation the lane sheds, so the windows then see a sample of the
traffic (``primer_side_work_items_total{kind="drift"}`` counts what was done and shed).
Per version it keeps the profile's three histograms (preprocessed pixel intensities,
predicted classes, maximum softmax) over a sliding window of the last ``drift_window`` rows
and exports the PSI of each against the reference as
``primer_drift_psi{model,version,feature}``. Each observed row's out-of-distribution score
(``contract.reference_profile.ood_score``) goes into ``primer_ood_score``. Versions without a
profile (or on a remote filesystem) have no drift metrics; the OOD score needs none.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from contract.reference_profile import (
    CONFIDENCE_EDGES,
    ReferenceProfile,
    ood_score,
    psi,
    read_profile,
)
from service.evaluation.feedback import class_scores
from service.evaluation_settings import EvaluationSettings
from service.inference.events import Answered
from service.inference.side_work import Lane, SideWork
from service.metrics import Metrics

logger = logging.getLogger(__name__)
FEATURES = ("pixels", "classes", "confidence")
KIND = "drift"
LANE_CAPACITY = 4096
"""Answered events waiting for the histograms at most (each holds its arrays alive)."""


def held_bytes(event: Answered) -> int:
    """The bytes of the arrays an event keeps alive while it waits."""
    return sum(a.nbytes for a in event.inputs.values()) + sum(
        a.nbytes for a in event.outputs.values()
    )


@dataclass
class _Window:
    """Histograms of the last rows of one version, one entry per request.

    Entries arrive and leave in bulks (numpy over a bulk's rows, not a Python step per
    request); the oldest entry leaves once the window holds ``limit`` rows without it.
    """

    profile: ReferenceProfile
    bulks: deque[_Bulk] = field(default_factory=deque)
    sums: dict[str, np.ndarray] = field(default_factory=dict)
    rows: int = 0

    def add(self, rows: np.ndarray, counts: dict[str, np.ndarray], limit: int) -> None:
        """Add one entry per element of ``rows`` (its row count), ``counts`` holding each
        feature's histograms with one line per entry; then slide past the oldest ones."""
        self.bulks.append(_Bulk(np.cumsum(rows), counts))
        self.rows += int(rows.sum())
        for name, value in counts.items():
            self.sums[name] = self.sums.get(name, 0) + value.sum(axis=0)
        while self.bulks:
            oldest = self.bulks[0]
            removed, drop = oldest.take_while_at_most(self.rows - limit)
            self.rows -= removed
            for name, value in drop.items():
                self.sums[name] = self.sums[name] - value
            if not oldest.empty:
                return
            self.bulks.popleft()


@dataclass
class _Bulk:
    """The entries of one bulk still in a window: cumulative row counts and histograms."""

    cumulative_rows: np.ndarray
    counts: dict[str, np.ndarray]
    start: int = 0

    @property
    def empty(self) -> bool:
        return self.start >= len(self.cumulative_rows)

    def take_while_at_most(self, budget: int) -> tuple[int, dict[str, np.ndarray]]:
        """Drop the oldest entries whose rows add up to at most ``budget``; their rows and
        summed histograms."""
        before = int(self.cumulative_rows[self.start - 1]) if self.start else 0
        end = int(np.searchsorted(self.cumulative_rows, before + budget, side="right"))
        if end <= self.start:
            return 0, {}
        dropped = {name: value[self.start : end].sum(axis=0) for name, value in self.counts.items()}
        removed = int(self.cumulative_rows[end - 1]) - before
        self.start = end
        return removed, dropped


class DriftMonitor:
    """The listener exporting PSI gauges and the OOD histogram (see the module docstring).

    Args:
        settings: window sizes and the side-work load threshold.
        metrics: the metric catalogue.
        model_base_path: the repository root, where the profiles are read from.
        side_work: the executor that computes the histograms.
        model_paths: models served from their own folders (``Settings.model_paths``), read
            when a version is first seen (so a reload's new folders count).
    """

    def __init__(
        self,
        settings: EvaluationSettings,
        metrics: Metrics,
        model_base_path: str,
        side_work: SideWork,
        model_paths: Callable[[], Mapping[str, str] | None] = lambda: None,
    ) -> None:
        self._settings = settings
        self._lane: Lane[Answered] = side_work.add(
            Lane(KIND, LANE_CAPACITY, self._observe, settings.max_inflight, weigh=held_bytes)
        )
        self._metrics = metrics
        self._base = Path(model_base_path)
        self._model_paths = model_paths
        self._windows: dict[tuple[str, int], _Window | None] = {}
        self._confidence_edges = np.asarray(CONFIDENCE_EDGES)

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
        """Queue ``event`` for the side-work thread (O(1); shed, counted, when full)."""
        self._lane.offer(event)

    def _observe(self, events: list[Answered]) -> None:
        """Side-work thread: OOD scores and window histograms of a bulk of events."""
        groups: dict[tuple[str, int], list[tuple[Answered, np.ndarray]]] = {}
        for event in events:
            scores = class_scores(event.outputs)
            if scores is not None:
                groups.setdefault((event.model, event.version), []).append((event, scores))
        for (model, version), group in groups.items():
            histogram_metric = self._metrics.ood_score.labels(model, str(version))
            for score in ood_score(np.concatenate([scores for _, scores in group])).tolist():
                histogram_metric.observe(score)
            window = self._window(model, version)
            if window is not None:
                self._slide(model, version, window, group)

    def _slide(
        self,
        model: str,
        version: int,
        window: _Window,
        group: list[tuple[Answered, np.ndarray]],
    ) -> None:
        profile = window.profile
        single = [(event, scores) for event, scores in group if len(event.inputs) == 1]
        if not single:
            return
        pixels = [next(iter(event.inputs.values())) for event, _ in single]
        scores = [scores for _, scores in single]
        rows = np.array([len(s) for s in scores])
        counts = {
            "pixels": _per_entry_histograms(pixels, np.asarray(profile.pixel_edges)),
            "classes": _per_entry_bincounts(
                np.concatenate([np.argmax(s, axis=1) for s in scores]), rows, len(profile.classes)
            ),
            "confidence": _per_entry_histograms(
                [np.max(s, axis=1) for s in scores], self._confidence_edges
            ),
        }
        window.add(rows, counts, self._limit)
        if window.rows < self._settings.drift_min_rows:
            return
        references = {
            "pixels": profile.pixels,
            "classes": profile.classes,
            "confidence": profile.confidence,
        }
        for feature in FEATURES:
            value = psi(np.asarray(references[feature]), window.sums[feature])
            self._metrics.drift_psi.labels(model, str(version), feature).set(value)

    @property
    def _limit(self) -> int:
        return self._settings.drift_window  # read per bulk: a reload may change it


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
