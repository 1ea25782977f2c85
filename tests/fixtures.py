"""Tiny SavedModels for the serving tests, built by this committed script.

Run ``python -m tests.fixtures OUT_DIR`` to write them by hand; the tests build them into a
temporary model repository. Each is small and deterministic so expected outputs are exact:

* ``half_plus_two`` — ``y = 0.5 * x + 2`` on ``x: float32[-1, 3]`` (TF Serving's classic).
* ``two_io`` — inputs ``a``, ``b`` (float32[-1, 2]); outputs ``sum``, ``product``; a second
  signature ``difference``.
* ``int_doubler`` — ``doubled = 2 * ids`` on ``ids: int64[-1]``.
* ``tiny_image`` — an 8x8 grayscale image classifier with an image contract and labels.
* ``heavy`` — ``y = 2x`` on ``x: float32[-1, 4]`` after fixed compute per batch (overload).
* ``shadowed`` — ``half_plus_two`` at version 1, ``y = 2 - x`` at version 3 (top-1 agrees
  only on rows of equal values) and ``heavy`` at version 4 (``x: float32[-1, 4]``, so every
  request mirrored from version 1 fails) and ``half_plus_two`` after fixed heavy compute at
  version 5 (a shadow many times slower than the primary).
* ``rollout_candidates`` — ``half_plus_two`` at versions 1 and 2 (the same outputs: a good
  candidate), ``y = 2 - x`` at version 3 (a candidate whose outputs differ) and, at version
  4, ``half_plus_two`` that fails any batch holding the value 13 (a candidate that fails the
  requests a test marks).
* ``two_versions`` — ``half_plus_two`` at version 1 and ``y = x + 2`` at version 2 (so the
  version that served shows in the outputs too), for traffic-split tests.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import tensorflow as tf

from contract.model_card import ImageContract, ModelCard, TensorInfo, write_model_card


class _HalfPlusTwo(tf.Module):
    def __init__(self, scale: float = 0.5, offset: float = 2.0) -> None:
        super().__init__()
        self.scale = tf.Variable(scale)
        self.offset = tf.Variable(offset)

    @tf.function(input_signature=[tf.TensorSpec([None, 3], tf.float32, name="x")])
    def serve(self, x: tf.Tensor) -> dict[str, tf.Tensor]:
        return {"y": self.scale * x + self.offset}


class _TwoIO(tf.Module):
    @tf.function(
        input_signature=[
            tf.TensorSpec([None, 2], tf.float32, name="a"),
            tf.TensorSpec([None, 2], tf.float32, name="b"),
        ]
    )
    def serve(self, a: tf.Tensor, b: tf.Tensor) -> dict[str, tf.Tensor]:
        return {"sum": a + b, "product": a * b}

    @tf.function(
        input_signature=[
            tf.TensorSpec([None, 2], tf.float32, name="a"),
            tf.TensorSpec([None, 2], tf.float32, name="b"),
        ]
    )
    def difference(self, a: tf.Tensor, b: tf.Tensor) -> dict[str, tf.Tensor]:
        return {"difference": a - b}


class _Doubler(tf.Module):
    @tf.function(input_signature=[tf.TensorSpec([None], tf.int64, name="ids")])
    def serve(self, ids: tf.Tensor) -> dict[str, tf.Tensor]:
        return {"doubled": ids * 2}


class _TinyImage(tf.Module):
    """Scores 4 classes from an 8x8 image: the mean brightness of each quadrant."""

    @tf.function(input_signature=[tf.TensorSpec([None, 8, 8, 1], tf.float32, name="image")])
    def serve(self, image: tf.Tensor) -> dict[str, tf.Tensor]:
        top, bottom = image[:, :4], image[:, 4:]
        quadrants = [top[:, :, :4], top[:, :, 4:], bottom[:, :, :4], bottom[:, :, 4:]]
        means = tf.stack([tf.reduce_mean(q, axis=[1, 2, 3]) for q in quadrants], axis=1)
        return {"probabilities": tf.nn.softmax(means * 10.0)}


class _SlowHalfPlusTwo(_HalfPlusTwo):
    """``half_plus_two`` after 300 products of a 256x256 matrix per batch (a slow version)."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = tf.Variable(tf.random.stateless_normal([256, 256], seed=[3, 4]) * 0.06)

    @tf.function(input_signature=[tf.TensorSpec([None, 3], tf.float32, name="x")])
    def serve(self, x: tf.Tensor) -> dict[str, tf.Tensor]:
        state = self.weight
        for _ in tf.range(300):
            state = tf.tanh(tf.matmul(state, self.weight))
        return {"y": self.scale * x + self.offset + 0.0 * tf.reduce_mean(state)}


class _FailsOnThirteen(_HalfPlusTwo):
    """``half_plus_two`` that fails (InvalidArgument) on a batch holding the value 13."""

    @tf.function(input_signature=[tf.TensorSpec([None, 3], tf.float32, name="x")])
    def serve(self, x: tf.Tensor) -> dict[str, tf.Tensor]:
        tf.debugging.assert_none_equal(x, tf.constant(13.0), message="x holds 13")
        return {"y": self.scale * x + self.offset}


class _Heavy(tf.Module):
    """``y = 2x`` after a fixed amount of compute per batch (matrix products of a 256x256
    weight), whatever its size: a model whose capacity is bound by the model, not by I/O."""

    def __init__(self, iterations: int) -> None:
        super().__init__()
        self.weight = tf.Variable(tf.random.stateless_normal([256, 256], seed=[1, 2]) * 0.06)
        self.iterations = iterations

    @tf.function(input_signature=[tf.TensorSpec([None, 4], tf.float32, name="x")])
    def serve(self, x: tf.Tensor) -> dict[str, tf.Tensor]:
        state = self.weight
        for _ in tf.range(self.iterations):
            state = tf.tanh(tf.matmul(state, self.weight))
        return {"y": 2.0 * x + 0.0 * tf.reduce_mean(state)}


def heavy(version_dir: Path, iterations: int = 400) -> Path:
    module = _Heavy(iterations)
    tf.saved_model.save(module, str(version_dir), signatures={"serving_default": module.serve})
    return version_dir


def half_plus_two(version_dir: Path, scale: float = 0.5, offset: float = 2.0) -> Path:
    module = _HalfPlusTwo(scale, offset)
    tf.saved_model.save(module, str(version_dir), signatures={"serving_default": module.serve})
    write_model_card(
        version_dir,
        ModelCard(
            name="half_plus_two",
            inputs=(TensorInfo("x", "float32", (-1, 3)),),
            outputs=(TensorInfo("y", "float32", (-1, 3)),),
        ),
    )
    return version_dir


def two_io(version_dir: Path) -> Path:
    module = _TwoIO()
    tf.saved_model.save(
        module,
        str(version_dir),
        signatures={"serving_default": module.serve, "difference": module.difference},
    )
    return version_dir


def int_doubler(version_dir: Path) -> Path:
    module = _Doubler()
    tf.saved_model.save(module, str(version_dir), signatures={"serving_default": module.serve})
    return version_dir


def tiny_image(version_dir: Path) -> Path:
    module = _TinyImage()
    tf.saved_model.save(module, str(version_dir), signatures={"serving_default": module.serve})
    write_model_card(
        version_dir,
        ModelCard(
            name="tiny_image",
            inputs=(TensorInfo("image", "float32", (-1, 8, 8, 1)),),
            outputs=(TensorInfo("probabilities", "float32", (-1, 4)),),
            image=ImageContract(color_mode="grayscale", height=8, width=8, resample="bilinear"),
            labels=("top_left", "top_right", "bottom_left", "bottom_right"),
        ),
    )
    return version_dir


def two_versions(model_dir: Path) -> Path:
    """``half_plus_two`` at version 1 and ``y = x + 2`` at version 2 under ``model_dir``."""
    half_plus_two(model_dir / "1")
    half_plus_two(model_dir / "2", scale=1.0)
    return model_dir


def shadowed(model_dir: Path) -> Path:
    """Versions 1, 3 and 4 as described in the module docstring, under ``model_dir``."""
    half_plus_two(model_dir / "1")
    half_plus_two(model_dir / "3", scale=-1.0)
    heavy(model_dir / "4", iterations=1)
    module = _SlowHalfPlusTwo()
    tf.saved_model.save(module, str(model_dir / "5"), signatures={"serving_default": module.serve})
    return model_dir


def rollout_candidates(model_dir: Path) -> Path:
    """Versions 1, 2 and 3 as described in the module docstring, under ``model_dir``."""
    half_plus_two(model_dir / "1")
    half_plus_two(model_dir / "2")
    half_plus_two(model_dir / "3", scale=-1.0)
    module = _FailsOnThirteen()
    tf.saved_model.save(module, str(model_dir / "4"), signatures={"serving_default": module.serve})
    return model_dir


def quadrant_image(quadrant: int, size: int = 8) -> np.ndarray:
    """An 8-bit grayscale image, white in one quadrant (0..3) and black elsewhere."""
    pixels = np.zeros((size, size), dtype=np.uint8)
    half = size // 2
    row, col = divmod(quadrant, 2)
    pixels[row * half : (row + 1) * half, col * half : (col + 1) * half] = 255
    return pixels


def build_repository(base: Path) -> Path:
    """A model repository holding every fixture model at version 1."""
    half_plus_two(base / "half_plus_two" / "1")
    two_io(base / "two_io" / "1")
    tiny_image(base / "tiny_image" / "1")
    int_doubler(base / "int_doubler" / "1")
    return base


if __name__ == "__main__":
    print(build_repository(Path(sys.argv[1])))
