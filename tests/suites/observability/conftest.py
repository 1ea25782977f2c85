"""Fixtures of the observability tests: the model they drive traffic to."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def traffic_model(fixture_repository: Path) -> str:
    """mnist_dnn when the shipped model is in the repository, else the half_plus_two fixture."""
    return "mnist_dnn" if (fixture_repository / "mnist_dnn").is_dir() else "half_plus_two"
