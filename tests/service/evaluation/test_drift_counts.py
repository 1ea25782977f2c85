"""The drift listener's bulk counting gives every queued request exactly the histogram the
reference profile's own rule (``contract.reference_profile.histogram``) gives it alone."""

from __future__ import annotations

import numpy as np
import pytest

from contract.reference_profile import CONFIDENCE_EDGES, PIXEL_RANGES, histogram, pixel_edges
from service.evaluation.drift import _per_entry_bincounts, _per_entry_histograms, _Window


def _requests(rng: np.random.Generator, edges: np.ndarray) -> list[np.ndarray]:
    """Requests of 1-3 rows, values a little beyond the edges on both sides, and every edge
    (with its float32 neighbours) and a NaN placed in them."""
    low, high = edges[0], edges[-1]
    spread = (high - low) * 1.2
    parts = [
        (rng.random((int(rng.integers(1, 4)), 28, 28)) * spread + low - 0.1 * (high - low)).astype(
            np.float32
        )
        for _ in range(40)
    ]
    flat = parts[0].reshape(-1)
    for index, edge in enumerate(edges):
        below = np.nextafter(np.float32(edge), np.float32(-np.inf))
        above = np.nextafter(np.float32(edge), np.float32(np.inf))
        flat[3 * index : 3 * index + 3] = (edge, below, above)
    parts[1].reshape(-1)[0] = np.nan
    return parts


@pytest.mark.parametrize("normalization", sorted(PIXEL_RANGES))
def test_bulk_pixel_histograms_equal_the_reference_rule(normalization: str) -> None:
    edges = pixel_edges(normalization)
    rng = np.random.default_rng(3)
    for _ in range(5):
        parts = _requests(rng, edges)
        expected = np.stack([histogram(part, edges) for part in parts])
        np.testing.assert_array_equal(_per_entry_histograms(parts, edges), expected)


def test_bulk_confidence_histograms_equal_the_reference_rule() -> None:
    edges = np.asarray(CONFIDENCE_EDGES)  # not equal-width: the binary-search path
    rng = np.random.default_rng(5)
    parts = [rng.random(int(rng.integers(1, 5))) for _ in range(30)]
    parts[0][:] = edges[: len(parts[0])]
    expected = np.stack([histogram(part, edges) for part in parts])
    np.testing.assert_array_equal(_per_entry_histograms(parts, edges), expected)


def test_bulk_class_counts_equal_bincount_per_request() -> None:
    rng = np.random.default_rng(9)
    rows = rng.integers(1, 6, 25)
    classes = rng.integers(0, 10, int(rows.sum()))
    expected = np.stack(
        [np.bincount(part, minlength=10) for part in np.split(classes, np.cumsum(rows)[:-1])]
    )
    np.testing.assert_array_equal(_per_entry_bincounts(classes, rows, 10), expected)


@pytest.mark.parametrize("limit", [1, 7, 100])
def test_the_window_slides_entry_by_entry_although_entries_arrive_in_bulks(limit: int) -> None:
    """After every bulk, the window's sums are those of the newest entries that the rule
    keeps: drop the oldest while the rows left without it still reach ``limit``."""
    rng = np.random.default_rng(5)
    window = _Window(profile=None)  # type: ignore[arg-type]  # the profile is not read here
    kept: list[tuple[int, np.ndarray]] = []
    for _ in range(30):
        size = int(rng.integers(1, 40))
        rows = rng.integers(1, 4, size)
        counts = rng.integers(0, 50, (size, 10))
        window.add(rows, {"pixels": counts}, limit)
        kept.extend(zip(rows.tolist(), counts, strict=True))
        while sum(r for r, _ in kept) - kept[0][0] >= limit:
            kept.pop(0)
        assert window.rows == sum(r for r, _ in kept)
        np.testing.assert_array_equal(window.sums["pixels"], np.sum([c for _, c in kept], axis=0))
