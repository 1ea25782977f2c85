"""Augmentation: each option changes images as specified, on a random subset of each batch."""

from __future__ import annotations

import math

import numpy as np
import pytest
import tensorflow as tf

from contract.model_card import ImageContract
from training.data.augmentation import Augmentation, Augmenter
from training.data.inputs import model_input
from training.data.pipeline import batches

SIDE = 33  # odd: the rotation centre is the middle pixel
CENTRE = (SIDE - 1) / 2
N = 64


def _augment(images: np.ndarray, **options: object) -> np.ndarray:
    settings = {"fraction": 1.0, "fill_mode": "constant", **options}
    augmenter = Augmenter(Augmentation(**settings), seed=7)  # type: ignore[arg-type]
    out = augmenter(tf.constant(images, tf.float32)).numpy()
    assert out.shape == images.shape and out.dtype == np.float32
    return out


def _blank(n: int = N) -> np.ndarray:
    return np.zeros((n, SIDE, SIDE, 1), np.float32)


def _centroids(images: np.ndarray) -> np.ndarray:
    """(row, column) of the brightness centroid of each image."""
    rows, cols = np.mgrid[0:SIDE, 0:SIDE]
    mass = images[..., 0].sum(axis=(1, 2))
    return np.stack(
        [(images[..., 0] * rows).sum(axis=(1, 2)) / mass,
         (images[..., 0] * cols).sum(axis=(1, 2)) / mass],
        axis=1,
    )  # fmt: skip


def _random_images(n: int = N, low: int = 0, high: int = 256, channels: int = 3) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(low, high, (n, 12, 10, channels)).astype(np.float32)


@pytest.mark.parametrize(
    ("mode", "variants"),
    [
        ("horizontal", lambda x: [x, x[:, ::-1]]),
        ("vertical", lambda x: [x, x[::-1]]),
        ("horizontal_and_vertical", lambda x: [x, x[:, ::-1], x[::-1], x[::-1, ::-1]]),
    ],
)
def test_flip_is_an_exact_mirror(mode: str, variants) -> None:
    images = _random_images()
    out = _augment(images, flip=mode)
    seen = set()
    for original, flipped in zip(images, out, strict=True):
        matches = [i for i, v in enumerate(variants(original)) if np.array_equal(flipped, v)]
        assert matches, "a flipped image is not an exact mirror of its original"
        seen.add(matches[0])
    assert seen == set(range(len(variants(images[0])))), seen  # every variant occurs


def test_rotation_stays_within_its_range() -> None:
    images = _blank()
    images[:, 15:18, 27:30] = 255  # a dot 12 pixels right of the centre
    out = _augment(images, rotation=20)
    rows, cols = _centroids(out).T
    angles = np.degrees(np.arctan2(rows - CENTRE, cols - CENTRE))
    assert np.abs(angles).max() <= 20 + 1.5, angles
    assert np.abs(angles).max() > 10, "no image was rotated by much"
    assert (angles > 2).any() and (angles < -2).any()  # both directions
    radius = np.hypot(rows - CENTRE, cols - CENTRE)
    np.testing.assert_allclose(radius, 12, atol=1)  # a rotation, not a shift


@pytest.mark.parametrize(("option", "axis"), [("width_shift", 1), ("height_shift", 0)])
def test_shift_stays_within_its_range(option: str, axis: int) -> None:
    images = _blank()
    images[:, 15:18, 15:18] = 255
    out = _augment(images, **{option: 0.2})
    moved = _centroids(out) - CENTRE
    limit = 0.2 * SIDE
    assert np.abs(moved[:, axis]).max() <= limit + 0.5, moved
    assert np.abs(moved[:, axis]).max() > limit / 2, "no image was shifted by much"
    np.testing.assert_allclose(moved[:, 1 - axis], 0, atol=0.01)  # the other axis stays


def test_zoom_stays_within_its_range() -> None:
    images = _blank()
    images[:, 11:22, 11:22] = 255  # an 11x11 centred square
    out = _augment(images, zoom=0.3)
    scale = np.sqrt(out[..., 0].sum(axis=(1, 2)) / images[..., 0].sum(axis=(1, 2)))
    # the zoom factor z is drawn from [0.7, 1.3]; content scales by 1 / z
    assert scale.min() >= 1 / 1.3 - 0.03 and scale.max() <= 1 / 0.7 + 0.03, scale
    assert scale.min() < 0.9 and scale.max() > 1.1, "zoom went only one way"
    np.testing.assert_allclose(_centroids(out), CENTRE, atol=0.05)  # about the centre


def test_brightness_adds_one_bounded_delta_per_image() -> None:
    images = _random_images(low=60, high=196)  # +/- 51 never clips
    out = _augment(images, brightness=0.2)
    delta = out - images
    per_image = delta.reshape(len(delta), -1)
    np.testing.assert_allclose(per_image - per_image[:, :1], 0, atol=1e-4)  # one per image
    assert np.abs(per_image).max() <= 0.2 * 255 + 1e-3
    assert per_image.max() > 20 and per_image.min() < -20
    bright = _augment(np.full((N, 4, 4, 3), 250, np.float32), brightness=0.5)
    assert bright.min() >= 0 and bright.max() <= 255  # clipped to the 0-255 range


def test_only_a_random_fraction_of_each_batch_is_augmented() -> None:
    images = _random_images(n=400, low=60, high=196)
    augmenter = Augmenter(Augmentation(brightness=0.2, fraction=0.25), seed=3)
    out = augmenter(tf.constant(images)).numpy()
    unchanged = np.array([np.array_equal(a, b) for a, b in zip(images, out, strict=True)])
    assert 0.15 < 1 - unchanged.mean() < 0.35, unchanged.mean()  # about a quarter changed
    assert Augmentation(brightness=0.2, fraction=0).enabled is False
    assert Augmentation().enabled is False


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"flip": "diagonal"}, "flip must be one of"),
        ({"rotation": 200}, "rotation must be 0-180"),
        ({"width_shift": 1.5}, "width-shift must be between 0 and 1"),
        ({"zoom": 1.0}, "zoom must be at least 0 and below 1"),
        ({"fraction": -0.1}, "fraction must be between 0 and 1"),
    ],
)
def test_bad_settings_are_refused(settings: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Augmentation(**settings)


CONTRACT = ImageContract(
    "grayscale", 12, 10, normalization="standardize", mean=(90.0,), std=(40.0,)
)


def test_pipeline_without_augmentation_feeds_what_the_service_would() -> None:
    pixels = _random_images(n=10, channels=1).astype(np.uint8)
    labels = np.arange(10, dtype=np.int64)
    for shape in ((12, 10, 1), (12, 10)):  # the model's input layout, whatever its rank
        made = batches(pixels, labels, CONTRACT, shape, batch_size=4)
        assert made.steps == 3 and made.size == 10
        inputs, classes = zip(*made.dataset.as_numpy_iterator(), strict=True)
        fed = np.concatenate(inputs)
        expected = model_input(pixels, CONTRACT, shape)
        assert fed.dtype == np.float32 and fed.shape == (10, *shape)
        assert fed.tobytes() == expected.tobytes()  # bit for bit
        np.testing.assert_array_equal(np.concatenate(classes), labels)


def test_training_pipeline_shuffles_repeats_and_augments_a_subset() -> None:
    pixels = _random_images(n=64, low=60, high=196, channels=1).astype(np.uint8)
    labels = np.arange(64, dtype=np.int64)
    augmenter = Augmenter(Augmentation(brightness=0.2, fraction=0.5), seed=1)
    made = batches(pixels, labels, CONTRACT, (12, 10, 1), 16, shuffle_seed=0,
                   augmenter=augmenter, repeat=True)  # fmt: skip
    epochs = [list(made.dataset.skip(4 * e).take(4).as_numpy_iterator()) for e in range(2)]
    orders = [np.concatenate([y for _, y in epoch]) for epoch in epochs]
    assert sorted(orders[0]) == list(range(64)) and orders[0].tolist() != orders[1].tolist()
    inputs = np.concatenate([x for x, _ in epochs[0]])
    clean = model_input(pixels[orders[0]], CONTRACT, (12, 10, 1))
    unchanged = [a.tobytes() == b.tobytes() for a, b in zip(inputs, clean, strict=True)]
    assert 10 < sum(unchanged) < 54  # some augmented, the others untouched bit for bit
    deltas = (inputs - clean).reshape(64, -1) * 40  # back in 0-255 units
    assert math.isclose(np.abs(deltas).max(), 0.2 * 255, rel_tol=0.2)
