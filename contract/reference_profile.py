"""The reference profile: what a model's inputs and confidences looked like at training time.

Export writes ``assets.extra/reference_profile.json``; the server keeps the same histograms
over sliding windows of live traffic and exports the population stability index (PSI) of
each against the reference. Training and serving share these functions, so the bins and
the PSI are one rule. numpy only.

- ``pixels``: a histogram of the preprocessed pixel intensities (the model's input).
- ``classes``: the class prior (the share of each predicted class).
- ``confidence``: a histogram of the maximum softmax probability.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from contract.layout import ASSETS_EXTRA

PROFILE_PATH = ASSETS_EXTRA / "reference_profile.json"
PIXEL_BINS = 10
CONFIDENCE_EDGES = (0.0, 0.3, 0.5, 0.7, 0.8, 0.9, 0.95, 0.99, 1.0)
PIXEL_RANGES = {"unit": (0.0, 1.0), "symmetric": (-1.0, 1.0), "standardize": (-3.0, 3.0)}
PSI_FLOOR = 1e-4
"""Empty bins count as this share, so the PSI stays finite."""


def pixel_edges(normalization: str) -> np.ndarray:
    """Equal-width bin edges over the range a normalization produces."""
    low, high = PIXEL_RANGES[normalization]
    return np.linspace(low, high, PIXEL_BINS + 1)


def histogram(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Counts of ``values`` per bin; values outside the edges fall into the end bins."""
    inner = np.clip(np.asarray(values, np.float64).ravel(), edges[0], edges[-1])
    return np.histogram(inner, bins=edges)[0].astype(np.int64)


def ood_score(probabilities: np.ndarray) -> np.ndarray:
    """Out-of-distribution score per row: 1 - the maximum softmax probability."""
    return 1.0 - probabilities.max(axis=-1)


def psi(reference: np.ndarray, current: np.ndarray) -> float:
    """Population stability index of two histograms (counts or shares): sum (c-r)*ln(c/r)."""
    ref = np.maximum(_shares(reference), PSI_FLOOR)
    cur = np.maximum(_shares(current), PSI_FLOOR)
    return float(np.sum((cur - ref) * np.log(cur / ref)))


def _shares(counts: np.ndarray) -> np.ndarray:
    values = np.asarray(counts, np.float64)
    total = values.sum()
    return values / total if total > 0 else values


@dataclass(frozen=True)
class ReferenceProfile:
    """The three reference histograms (shares summing to 1) and the pixel bin edges."""

    pixel_edges: tuple[float, ...]
    pixels: tuple[float, ...]
    classes: tuple[float, ...]
    confidence: tuple[float, ...]

    def to_dict(self) -> dict[str, object]:
        return {
            "format": 1,
            "pixel_edges": list(self.pixel_edges),
            "pixels": list(self.pixels),
            "classes": list(self.classes),
            "confidence_edges": list(CONFIDENCE_EDGES),
            "confidence": list(self.confidence),
        }

    @classmethod
    def from_dict(cls, data: dict) -> ReferenceProfile:
        return cls(
            tuple(data["pixel_edges"]),
            tuple(data["pixels"]),
            tuple(data["classes"]),
            tuple(data["confidence"]),
        )


def build_profile(
    inputs: np.ndarray, probabilities: np.ndarray, normalization: str
) -> ReferenceProfile:
    """The profile of preprocessed ``inputs`` and the model's ``probabilities`` on them."""
    edges = pixel_edges(normalization)
    pixels = histogram(inputs, edges)
    classes = np.bincount(np.argmax(probabilities, axis=1), minlength=probabilities.shape[1])
    confidence = histogram(np.max(probabilities, axis=1), np.asarray(CONFIDENCE_EDGES))
    return ReferenceProfile(
        tuple(edges.tolist()),
        tuple((pixels / pixels.sum()).tolist()),
        tuple((classes / classes.sum()).tolist()),
        tuple((confidence / confidence.sum()).tolist()),
    )


def write_profile(version_dir: str | Path, profile: ReferenceProfile) -> Path:
    """Write ``assets.extra/reference_profile.json`` into a (temporary) version folder."""
    path = Path(version_dir) / PROFILE_PATH
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(profile.to_dict(), indent=2) + "\n", encoding="utf-8")
    return path


def read_profile(version_dir: str | Path) -> ReferenceProfile | None:
    """The profile of a local version folder; None when it has none."""
    path = Path(version_dir) / PROFILE_PATH
    if not path.exists():
        return None
    return ReferenceProfile.from_dict(json.loads(path.read_text(encoding="utf-8")))
