"""Drift and out-of-distribution detection against the reference profile written at export.

Per version, the listener keeps the profile's three histograms (preprocessed pixel
intensities, predicted classes, maximum softmax) over a sliding window of the last
``drift_window`` rows and exports the PSI of each against the reference as
``primer_drift_psi{model,version,feature}``. Each answered row's out-of-distribution score
(``contract.reference_profile.ood_score``) goes into ``primer_ood_score``. Versions
without a profile (or on a remote filesystem) have no drift metrics; the OOD score needs
none.
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from contract.reference_profile import (
    CONFIDENCE_EDGES,
    ReferenceProfile,
    histogram,
    ood_score,
    psi,
    read_profile,
)
from service.evaluation.feedback import class_scores
from service.evaluation_settings import EvaluationSettings
from service.inference.events import Answered
from service.metrics import Metrics

logger = logging.getLogger(__name__)
FEATURES = ("pixels", "classes", "confidence")


@dataclass
class _Window:
    """Histograms of the last rows of one version, one entry per request."""

    profile: ReferenceProfile
    entries: deque[tuple[int, dict[str, np.ndarray]]] = field(default_factory=deque)
    sums: dict[str, np.ndarray] = field(default_factory=dict)
    rows: int = 0

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
    """

    def __init__(self, settings: EvaluationSettings, metrics: Metrics, model_base_path: str):
        self._settings = settings
        self._metrics = metrics
        self._base = Path(model_base_path)
        self._windows: dict[tuple[str, int], _Window | None] = {}
        self._confidence_edges = np.asarray(CONFIDENCE_EDGES)

    def _window(self, model: str, version: int) -> _Window | None:
        key = (model, version)
        if key not in self._windows:
            try:  # once per version; a broken profile only turns drift off for it
                profile = read_profile(self._base / model / str(version))
            except (OSError, ValueError, KeyError, TypeError) as error:
                logger.warning("reference profile of %s:%d unreadable: %s", model, version, error)
                profile = None
            self._windows[key] = None if profile is None else _Window(profile)
        return self._windows[key]

    def answered(self, event: Answered) -> None:
        """Observe OOD scores, slide the window, set the PSI gauges."""
        scores = class_scores(event.outputs)
        if scores is None:
            return
        version = str(event.version)
        histogram_metric = self._metrics.ood_score.labels(event.model, version)
        for score in ood_score(scores):
            histogram_metric.observe(float(score))
        window = self._window(event.model, event.version)
        if window is None or len(event.inputs) != 1:
            return
        profile = window.profile
        (pixels,) = event.inputs.values()
        counts = {
            "pixels": histogram(pixels, np.asarray(profile.pixel_edges)),
            "classes": np.bincount(np.argmax(scores, axis=1), minlength=len(profile.classes)),
            "confidence": histogram(np.max(scores, axis=1), self._confidence_edges),
        }
        window.add(len(scores), counts, self._settings.drift_window)
        if window.rows < self._settings.drift_min_rows:
            return
        references = {
            "pixels": profile.pixels,
            "classes": profile.classes,
            "confidence": profile.confidence,
        }
        for feature in FEATURES:
            value = psi(np.asarray(references[feature]), window.sums[feature])
            self._metrics.drift_psi.labels(event.model, version, feature).set(value)
