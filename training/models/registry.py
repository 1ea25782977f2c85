"""The registry of architectures: name → builder, default input shape, image contract.

Importable without TensorFlow (the builders are imported on first use), so the CLI can
reject a bad architecture name or data path in a fraction of a second.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import keras

IMAGENET = "imagenet"
"""``--weights imagenet``: ``keras.applications`` weights, for architectures that fit them."""
WEIGHT_SUFFIXES = (".weights.h5", ".keras")
"""File names ``--weights`` accepts: weights saved by Keras 3."""


class WeightsError(ValueError):
    """Pretrained weights do not fit an architecture; the message names the file and layer."""


@dataclass(frozen=True)
class Architecture:
    """A registered builder with its default input shape and number of classes.

    Attributes:
        name: registry key (the CLI's ``architecture`` argument) and the name of the
            builder function in :mod:`training.models.architectures`.
        input_shape: default shape of one image: (H, W) for the grayscale-only dense
            model, (H, W, C) otherwise.
        num_classes: default number of classes.
        description: one line for ``--help``.
        min_side: the smallest supported image height and width.
        frontend: whether it has a convolutional frontend (for ``--freeze-base`` and
            ``--weights``).
        imagenet: whether ``--weights imagenet`` (``keras.applications``) fits it.
    """

    name: str
    input_shape: tuple[int, ...]
    num_classes: int
    description: str
    min_side: int = 1
    frontend: bool = True
    imagenet: bool = False

    @property
    def color_mode(self) -> str:
        """Default color mode of the image contract: ``grayscale`` or ``rgb``."""
        if len(self.input_shape) == 2 or self.input_shape[2] == 1:
            return "grayscale"
        return "rgb"

    @property
    def image_size(self) -> tuple[int, int]:
        """Default (height, width) of the image contract."""
        return self.input_shape[0], self.input_shape[1]

    def shape_for(self, height: int, width: int, color_mode: str) -> tuple[int, ...]:
        """This model's input shape for another image size or color mode, keeping its rank.

        Raises:
            ValueError: an RGB contract for a model taking (H, W) grayscale input.
        """
        if len(self.input_shape) == 2:
            if color_mode != "grayscale":
                raise ValueError(
                    f"architecture {self.name} takes (height, width) grayscale "
                    f"input; color mode {color_mode!r} is not supported"
                )
            return (height, width)
        return (height, width, 1 if color_mode == "grayscale" else 3)

    def build(
        self, input_shape: Sequence[int] | None = None, num_classes: int | None = None
    ) -> keras.Model:
        """Build an uncompiled model (defaults: this entry's shape and class count)."""
        builders = importlib.import_module("training.models.architectures")
        return getattr(builders, self.name)(
            tuple(input_shape or self.input_shape), num_classes or self.num_classes
        )


ARCHITECTURES: dict[str, Architecture] = {
    arch.name: arch
    for arch in (
        Architecture(
            "mnist_dnn",
            (28, 28),
            10,
            "Dense 512-512 DNN, 28x28 grayscale digits",
            frontend=False,
        ),
        Architecture(
            "sign_cnn",
            (128, 128, 1),
            26,
            "small CNN, 128x128 grayscale sign-language letters A-Z",
            min_side=3,
        ),
        Architecture(
            "vgg16",
            (224, 224, 3),
            1000,
            "VGG16 (conv_block), 224x224 RGB",
            min_side=32,
            imagenet=True,
        ),
        Architecture(
            "resnet50",
            (224, 224, 3),
            1000,
            "ResNet50 v1.5 (identity/projection blocks), 224x224 RGB",
            min_side=32,
        ),
    )
}


def get_architecture(name: str) -> Architecture:
    """Look up a registered architecture.

    Raises:
        KeyError: ``name`` is not registered; the message lists the known names.
    """
    try:
        return ARCHITECTURES[name]
    except KeyError:
        raise KeyError(
            f"unknown architecture {name!r}; expected one of {', '.join(ARCHITECTURES)}"
        ) from None
