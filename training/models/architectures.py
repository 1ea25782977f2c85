"""The primer's four image classifiers, in its Functional-API, procedural-reuse style.

Each builder takes an input shape and a number of classes and returns an uncompiled
``keras.Model``. The input layer is always named :data:`contract.layout.INPUT_NAME`, so the exported
``serving_default`` signature has a known, stable input name.

Parameter counts at the default shapes (asserted by the tests):

=============  ==================  =============
architecture   input / classes     parameters
=============  ==================  =============
mnist_dnn      28x28 / 10                669,706
sign_cnn       128x128x1 / 26          8,402,618
vgg16          224x224x3 / 1000      138,357,544
resnet50       224x224x3 / 1000       25,610,152
=============  ==================  =============

ResNet50's convolutions carry no bias, since batch normalization follows each of them;
``keras.applications.ResNet50`` keeps those biases and so counts 26,560 more (25,636,712).
The registry of these builders is :data:`training.models.registry.ARCHITECTURES` (importable
without TensorFlow, so the CLI can check its arguments before TensorFlow starts).
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
from keras import layers

from contract.layout import INPUT_NAME, OUTPUT_NAME


def _input(input_shape: Sequence[int]) -> keras.KerasTensor:
    return keras.Input(shape=tuple(input_shape), name=INPUT_NAME)


def _classifier(x: keras.KerasTensor, num_classes: int) -> keras.KerasTensor:
    return layers.Dense(num_classes, activation="softmax", name=OUTPUT_NAME)(x)


# --- MNIST DNN ------------------------------------------------------------------------


def mnist_dnn(input_shape: Sequence[int] = (28, 28), num_classes: int = 10) -> keras.Model:
    """The primer's deep neural network for MNIST.

    Flatten → Dense 512 relu → Dense 512 relu → Dense softmax.

    Args:
        input_shape: shape of one image without the batch axis, e.g. (28, 28).
        num_classes: number of output classes.

    Input shape:
        (batch, *input_shape), float32.

    Output shape:
        (batch, num_classes) class probabilities.
    """
    inputs = _input(input_shape)
    x = layers.Flatten()(inputs)
    x = layers.Dense(512, activation="relu")(x)
    x = layers.Dense(512, activation="relu")(x)
    outputs = _classifier(x, num_classes)
    return keras.Model(inputs, outputs, name="mnist_dnn")


# --- Sign-language CNN ----------------------------------------------------------------


def sign_cnn(input_shape: Sequence[int] = (128, 128, 1), num_classes: int = 26) -> keras.Model:
    """The primer's small convolutional network for sign-language letters.

    Conv2D 16 3x3 stride 2 same relu → MaxPool 2x2 → Flatten → Dense 512 relu → softmax.

    Args:
        input_shape: (height, width, channels) of one image.
        num_classes: number of output classes.

    Input shape:
        (batch, height, width, channels), float32.

    Output shape:
        (batch, num_classes) class probabilities.
    """
    inputs = _input(input_shape)
    x = layers.Conv2D(16, (3, 3), strides=(2, 2), padding="same", activation="relu")(inputs)
    x = layers.MaxPooling2D((2, 2))(x)
    x = layers.Flatten()(x)
    x = layers.Dense(512, activation="relu")(x)
    outputs = _classifier(x, num_classes)
    return keras.Model(inputs, outputs, name="sign_cnn")


# --- VGG16 ----------------------------------------------------------------------------


def conv_block(x: keras.KerasTensor, n_layers: int, n_filters: int) -> keras.KerasTensor:
    """A VGG block: ``n_layers`` 3x3 same-padded relu convolutions, then a 2x2 max-pool.

    Args:
        x: input feature map.
        n_layers: number of convolutions in the block.
        n_filters: number of filters of each convolution.

    Returns:
        The feature map, spatially halved.
    """
    for _ in range(n_layers):
        x = layers.Conv2D(n_filters, (3, 3), padding="same", activation="relu")(x)
    return layers.MaxPooling2D((2, 2), strides=(2, 2))(x)


def vgg16(input_shape: Sequence[int] = (224, 224, 3), num_classes: int = 1000) -> keras.Model:
    """VGG16: five conv blocks (2, 2, 3, 3, 3 layers), then two Dense 4096 relu layers.

    Args:
        input_shape: (height, width, channels) of one image.
        num_classes: number of output classes.

    Input shape:
        (batch, height, width, channels), float32.

    Output shape:
        (batch, num_classes) class probabilities.
    """
    inputs = _input(input_shape)
    x = inputs
    for n_layers, n_filters in ((2, 64), (2, 128), (3, 256), (3, 512), (3, 512)):
        x = conv_block(x, n_layers, n_filters)
    x = layers.Flatten()(x)
    x = layers.Dense(4096, activation="relu")(x)
    x = layers.Dense(4096, activation="relu")(x)
    outputs = _classifier(x, num_classes)
    return keras.Model(inputs, outputs, name="vgg16")


# --- ResNet50 v1.5 --------------------------------------------------------------------


def _conv_bn(
    x: keras.KerasTensor, n_filters: int, kernel: int, strides: int = 1, relu: bool = True
) -> keras.KerasTensor:
    x = layers.Conv2D(
        n_filters,
        (kernel, kernel),
        strides=(strides, strides),
        padding="same",
        use_bias=False,
        kernel_initializer="he_normal",
    )(x)
    x = layers.BatchNormalization()(x)
    return layers.ReLU()(x) if relu else x


def identity_block(x: keras.KerasTensor, n_filters: int) -> keras.KerasTensor:
    """Bottleneck residual block whose shortcut is the identity.

    1x1 (n_filters) → 3x3 (n_filters) → 1x1 (4 * n_filters), each with batch norm;
    the input is added back before the final relu.

    Args:
        x: input feature map with ``4 * n_filters`` channels.
        n_filters: filters of the bottleneck (the block outputs four times as many).

    Returns:
        The feature map, same shape as ``x``.
    """
    shortcut = x
    x = _conv_bn(x, n_filters, 1)
    x = _conv_bn(x, n_filters, 3)
    x = _conv_bn(x, 4 * n_filters, 1, relu=False)
    x = layers.Add()([shortcut, x])
    return layers.ReLU()(x)


def projection_block(x: keras.KerasTensor, n_filters: int, strides: int = 2) -> keras.KerasTensor:
    """Bottleneck residual block with a 1x1 projection shortcut (v1.5: stride on the 3x3).

    Args:
        x: input feature map.
        n_filters: filters of the bottleneck (the block outputs four times as many).
        strides: spatial stride of the 3x3 convolution and of the shortcut projection.

    Returns:
        The feature map with ``4 * n_filters`` channels, downsampled by ``strides``.
    """
    shortcut = _conv_bn(x, 4 * n_filters, 1, strides=strides, relu=False)
    x = _conv_bn(x, n_filters, 1)
    x = _conv_bn(x, n_filters, 3, strides=strides)
    x = _conv_bn(x, 4 * n_filters, 1, relu=False)
    x = layers.Add()([shortcut, x])
    return layers.ReLU()(x)


def residual_group(
    x: keras.KerasTensor, n_filters: int, n_blocks: int, strides: int = 2
) -> keras.KerasTensor:
    """One projection block followed by ``n_blocks - 1`` identity blocks.

    Args:
        x: input feature map.
        n_filters: bottleneck filters of every block in the group.
        n_blocks: total number of blocks in the group.
        strides: stride of the group's projection block.

    Returns:
        The group's output feature map.
    """
    x = projection_block(x, n_filters, strides=strides)
    for _ in range(n_blocks - 1):
        x = identity_block(x, n_filters)
    return x


def resnet50(input_shape: Sequence[int] = (224, 224, 3), num_classes: int = 1000) -> keras.Model:
    """ResNet50 v1.5: 7x7 stem, four bottleneck groups (3, 4, 6, 3 blocks), average pool.

    Convolutions carry no bias (each is followed by batch normalization).

    Args:
        input_shape: (height, width, channels) of one image.
        num_classes: number of output classes.

    Input shape:
        (batch, height, width, channels), float32.

    Output shape:
        (batch, num_classes) class probabilities.
    """
    inputs = _input(input_shape)
    x = layers.ZeroPadding2D(padding=(3, 3))(inputs)
    x = layers.Conv2D(
        64, (7, 7), strides=(2, 2), padding="valid", use_bias=False, kernel_initializer="he_normal"
    )(x)
    x = layers.BatchNormalization()(x)
    x = layers.ReLU()(x)
    x = layers.ZeroPadding2D(padding=(1, 1))(x)
    x = layers.MaxPooling2D((3, 3), strides=(2, 2))(x)
    for n_filters, n_blocks, strides in ((64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)):
        x = residual_group(x, n_filters, n_blocks, strides=strides)
    x = layers.GlobalAveragePooling2D()(x)
    outputs = _classifier(x, num_classes)
    return keras.Model(inputs, outputs, name="resnet50")


__all__ = [
    "conv_block",
    "identity_block",
    "mnist_dnn",
    "projection_block",
    "residual_group",
    "resnet50",
    "sign_cnn",
    "vgg16",
]
