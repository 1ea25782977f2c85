"""Fixtures for the training tests: real MNIST and tiny generated image datasets."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.training.helpers import IMAGE_KINDS, encode_image

REPO_ROOT = Path(__file__).resolve().parents[2]
MNIST_NPZ = Path(
    os.environ.get("PRIMER_MNIST_NPZ", REPO_ROOT.parent / "shared" / "data" / "mnist.npz")
)


@pytest.fixture(scope="session")
def mnist_npz() -> Path:
    """The real MNIST archive (``../shared/data/mnist.npz`` beside the repository)."""
    if not MNIST_NPZ.is_file():
        pytest.fail(f"real MNIST not found at {MNIST_NPZ}; set PRIMER_MNIST_NPZ")
    return MNIST_NPZ


def _suffix(fmt: str) -> str:
    return ".png" if fmt == "PNG" else ".jpg"


@pytest.fixture
def image_tree(tmp_path: Path) -> Callable[..., dict[str, list[Path]]]:
    """Writes ``root/<class>/<one image per kind>``; returns class → files."""

    def make(
        root: Path | None = None,
        classes: tuple[str, ...] = ("cat", "dog", "bird"),
    ) -> dict[str, list[Path]]:
        root = root or tmp_path / "images"
        files: dict[str, list[Path]] = {}
        for c, name in enumerate(classes):
            folder = root / name
            folder.mkdir(parents=True, exist_ok=True)
            for k, (mode, fmt) in enumerate(IMAGE_KINDS):
                path = folder / f"{mode.lower()}_{k}{_suffix(fmt)}"
                path.write_bytes(encode_image(mode, fmt, seed=100 * c + k))
                files.setdefault(name, []).append(path)
        return files

    return make
