"""``tf.data`` input pipelines: uint8 pixels in memory → augmented, normalized batches.

The loaders decode every image once, on a thread pool (:func:`training.data.layouts.parallel_map`),
into uint8 arrays (a quarter of float32's memory). Per batch, the pipeline then

1. draws the batch's indices (shuffled each pass for training) and gathers its pixels;
2. for training only, augments a random subset on 0-255 floats (:mod:`training.data.augmentation`);
3. normalizes with the service's own ``normalize`` and fits the model's input layout
   (:func:`training.data.inputs.model_input`), so an image that is not augmented reaches the
   model bit for bit as the service would feed it;

with parallel map calls and ``prefetch``, so batches are ready before the model asks.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from contract.model_card import ImageContract
from training.data.augmentation import Augmenter
from training.data.inputs import model_input

AUTOTUNE = tf.data.AUTOTUNE


@dataclass(frozen=True)
class Batches:
    """A batched pipeline and how many batches make one pass over its images.

    Attributes:
        dataset: yields (inputs float32, labels int64) batches; endless when ``repeat``.
        steps: batches per pass (the last one may be short).
        size: number of images.
    """

    dataset: tf.data.Dataset
    steps: int
    size: int


def batches(
    pixels: np.ndarray,
    labels: np.ndarray,
    contract: ImageContract,
    input_shape: Sequence[int],
    batch_size: int,
    *,
    shuffle_seed: int | None = None,
    augmenter: Augmenter | None = None,
    repeat: bool = False,
) -> Batches:
    """A pipeline over uint8 pixels (N, H, W, C) and int64 labels (N,).

    Args:
        pixels: the images, at the contract's size.
        labels: class indices.
        contract: the image contract whose normalization is applied.
        input_shape: the model's input shape without the batch axis.
        batch_size: images per batch.
        shuffle_seed: shuffle with this seed, anew on every pass; None keeps the order.
        augmenter: augment a random subset of each batch (training only).
        repeat: repeat endlessly (for ``steps_per_epoch`` training).
    """
    if len(pixels) != len(labels) or len(pixels) == 0:
        raise ValueError(f"{len(pixels)} images and {len(labels)} labels; expected equal, > 0")
    height, width, channels = pixels.shape[1:]
    inputs_shape = (None, *input_shape)

    def gather(indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return pixels[indices], labels[indices]

    def normalize(images: np.ndarray) -> np.ndarray:
        return model_input(images, contract, input_shape)

    def load(indices: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        images, classes = tf.numpy_function(gather, [indices], (tf.uint8, tf.int64))
        images.set_shape((None, height, width, channels))
        classes.set_shape((None,))
        return images, classes

    def prepare(images: tf.Tensor, classes: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        if augmenter is not None:
            images = augmenter(tf.cast(images, tf.float32))
        inputs = tf.numpy_function(normalize, [images], tf.float32)
        inputs.set_shape(inputs_shape)
        return inputs, classes

    dataset = tf.data.Dataset.range(len(pixels))
    if shuffle_seed is not None:
        dataset = dataset.shuffle(len(pixels), seed=shuffle_seed, reshuffle_each_iteration=True)
    dataset = dataset.batch(batch_size)
    if repeat:
        dataset = dataset.repeat()
    dataset = dataset.map(load, num_parallel_calls=AUTOTUNE)
    dataset = dataset.map(prepare, num_parallel_calls=AUTOTUNE).prefetch(AUTOTUNE)
    return Batches(dataset, math.ceil(len(pixels) / batch_size), len(pixels))
