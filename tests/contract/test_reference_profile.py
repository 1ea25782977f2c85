"""The reference-profile rule training and serving share: bins, PSI, OOD score, the file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from contract.reference_profile import (
    PSI_FLOOR,
    build_profile,
    histogram,
    ood_score,
    pixel_edges,
    psi,
    read_profile,
    write_profile,
)
from tests.conftest import SHIPPED_MODELS


def test_histogram_bins_values_and_clips_outliers_into_the_end_bins() -> None:
    edges = pixel_edges("unit")
    counts = histogram(np.array([-0.5, 0.0, 0.05, 0.55, 1.0, 7.0]), edges)
    assert counts.tolist() == [3, 0, 0, 0, 0, 1, 0, 0, 0, 2]
    assert pixel_edges("symmetric")[0] == -1.0 and pixel_edges("standardize")[-1] == 3.0


def test_psi_is_zero_for_the_same_shares_and_grows_with_the_shift() -> None:
    reference = np.array([0.8, 0.1, 0.1])
    assert psi(reference, reference * 40) == pytest.approx(0.0)
    small = psi(reference, np.array([0.75, 0.15, 0.1]))
    large = psi(reference, np.array([0.1, 0.1, 0.8]))
    assert 0 < small < 0.1 < 1.0 < large
    assert np.isfinite(psi(reference, np.array([0.0, 0.0, 1.0])))  # empty bins: PSI_FLOOR
    assert PSI_FLOOR > 0


def test_ood_score_is_one_minus_the_top_probability() -> None:
    scores = ood_score(np.array([[0.9, 0.1], [0.5, 0.5]]))
    np.testing.assert_allclose(scores, [0.1, 0.5])


def test_a_profile_round_trips_through_its_file(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    inputs = rng.random((50, 4, 4)).astype(np.float32)
    probabilities = rng.dirichlet(np.ones(3), size=50)
    profile = build_profile(inputs, probabilities, "unit")
    for shares in (profile.pixels, profile.classes, profile.confidence):
        assert sum(shares) == pytest.approx(1.0)
    assert len(profile.classes) == 3
    write_profile(tmp_path, profile)
    assert read_profile(tmp_path) == profile
    assert read_profile(tmp_path / "elsewhere") is None


def test_the_shipped_mnist_dnn_has_a_profile() -> None:
    profile = read_profile(SHIPPED_MODELS / "mnist_dnn" / "1")
    assert profile is not None and len(profile.classes) == 10
    assert profile.pixels[0] > 0.5  # MNIST is mostly background
