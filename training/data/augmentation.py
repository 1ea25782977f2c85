"""Training-only image augmentation with Keras preprocessing layers, on a random subset.

The primer's invariance section, one option each: horizontal/vertical flip, rotation range,
width/height shift, zoom range, brightness range. The layers run in the training input
pipeline (:mod:`training.data.pipeline`) on 8-bit-range float pixels (0-255), *before* the image
contract's normalization, and never inside the model: the exported ``serving_default``
signature contains no augmentation, and validation and test images are never augmented.

Each image of a batch is augmented with probability ``fraction`` (default 0.5): a random
subset of every batch goes through all the enabled transformations, the rest pass through
bit for bit. Ranges, as Keras defines them:

* ``flip`` — ``horizontal``, ``vertical`` or ``horizontal_and_vertical``; each chosen image
  is mirrored (exactly, a pixel permutation) with probability 1/2 in each direction,
  the two directions independently.
* ``rotation`` — degrees; the angle is drawn from [-rotation, +rotation].
* ``width_shift`` / ``height_shift`` — fractions of the width/height; the shift is drawn from
  [-f * size, +f * size] pixels.
* ``zoom`` — the zoom factor ``z`` is drawn from [1 - zoom, 1 + zoom]; the content is scaled
  by 1 / z (z > 1 zooms out), the same factor on both axes.
* ``brightness`` — a fraction of the 0-255 range; one delta per image, drawn from
  [-brightness * 255, +brightness * 255], is added to every pixel, then clipped to 0-255.

Rotation, shift and zoom fill the uncovered border with ``fill_mode`` (default ``nearest``,
as the primer's ``ImageDataGenerator``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

FLIP_MODES = ("none", "horizontal", "vertical", "horizontal_and_vertical")
FILL_MODES = ("nearest", "reflect", "constant", "wrap")


@dataclass(frozen=True)
class Augmentation:
    """Which augmentations to apply, and to what share of each batch.

    Attributes:
        flip: one of :data:`FLIP_MODES`.
        rotation: maximum rotation in degrees (0 disables), at most 180.
        width_shift: maximum horizontal shift as a fraction of the width (0-1).
        height_shift: maximum vertical shift as a fraction of the height (0-1).
        zoom: maximum zoom as a fraction (0 to below 1): factor drawn from [1-zoom, 1+zoom].
        brightness: maximum brightness change as a fraction of 0-255 (0-1).
        fraction: probability that an image of a batch is augmented (0-1).
        fill_mode: how rotation/shift/zoom fill the border: one of :data:`FILL_MODES`.
    """

    flip: str = "none"
    rotation: float = 0.0
    width_shift: float = 0.0
    height_shift: float = 0.0
    zoom: float = 0.0
    brightness: float = 0.0
    fraction: float = 0.5
    fill_mode: str = "nearest"

    def __post_init__(self) -> None:
        problems = []
        if self.flip not in FLIP_MODES:
            problems.append(f"flip must be one of {', '.join(FLIP_MODES)}, got {self.flip!r}")
        if self.fill_mode not in FILL_MODES:
            problems.append(f"fill mode must be one of {', '.join(FILL_MODES)}")
        if not 0 <= self.rotation <= 180:
            problems.append(f"rotation must be 0-180 degrees, got {self.rotation}")
        for name in ("width_shift", "height_shift", "brightness", "fraction"):
            value = getattr(self, name)
            if not 0 <= value <= 1:
                problems.append(f"{name.replace('_', '-')} must be between 0 and 1, got {value}")
        if not 0 <= self.zoom < 1:
            problems.append(f"zoom must be at least 0 and below 1, got {self.zoom}")
        if problems:
            raise ValueError("; ".join(problems))

    @property
    def enabled(self) -> bool:
        """Whether any transformation is on and the fraction is above 0."""
        active = (
            self.flip != "none"
            or self.rotation
            or self.width_shift
            or self.height_shift
            or self.zoom
            or self.brightness
        )
        return bool(active) and self.fraction > 0

    def to_dict(self) -> dict[str, Any]:
        """The settings, for the model's provenance."""
        return asdict(self)


class Augmenter:
    """Applies an :class:`Augmentation` to a random subset of a batch of 0-255 float images.

    Built from Keras preprocessing layers (``RandomFlip``, ``RandomRotation``,
    ``RandomTranslation``, ``RandomZoom``, ``RandomBrightness``), each with its own seed.
    Callable inside a ``tf.data`` map: images (N, H, W, C) float32 in, same shape out.

    Args:
        augmentation: what to apply.
        seed: base seed of the layers and of the subset choice.
    """

    def __init__(self, augmentation: Augmentation, seed: int = 0) -> None:
        import keras  # deferred: the settings above must import without TensorFlow
        from keras import layers

        self.augmentation = augmentation
        a, fill = augmentation, augmentation.fill_mode
        chosen: list[keras.layers.Layer] = []
        # one layer per direction: Keras's "horizontal_and_vertical" flips both or neither
        if a.flip in ("horizontal", "horizontal_and_vertical"):
            chosen.append(layers.RandomFlip("horizontal", seed=seed + 1))
        if a.flip in ("vertical", "horizontal_and_vertical"):
            chosen.append(layers.RandomFlip("vertical", seed=seed + 7))
        if a.rotation:
            chosen.append(layers.RandomRotation(a.rotation / 360, fill_mode=fill, seed=seed + 2))
        if a.width_shift or a.height_shift:
            chosen.append(
                layers.RandomTranslation(
                    a.height_shift, a.width_shift, fill_mode=fill, seed=seed + 3
                )
            )
        if a.zoom:
            chosen.append(layers.RandomZoom(a.zoom, fill_mode=fill, seed=seed + 4))
        if a.brightness:
            chosen.append(layers.RandomBrightness(a.brightness, (0, 255), seed=seed + 5))
        self.layers = chosen
        self._subset_seed = keras.random.SeedGenerator(seed + 6)

    def __call__(self, images: Any) -> Any:
        """Augment a random ``fraction`` of ``images``; the others are returned unchanged."""
        import keras
        import tensorflow as tf

        augmented = images
        for layer in self.layers:
            augmented = layer(augmented, training=True)
        draw = keras.random.uniform((tf.shape(images)[0],), seed=self._subset_seed)
        chosen = tf.reshape(draw < self.augmentation.fraction, (-1, 1, 1, 1))
        return tf.where(chosen, tf.cast(augmented, images.dtype), images)
