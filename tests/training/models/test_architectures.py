"""The primer's four classifiers: parameter counts, input naming, registry."""

from __future__ import annotations

import pytest

from contract.layout import INPUT_NAME
from training.models import architectures
from training.models.registry import ARCHITECTURES, get_architecture

EXPECTED_PARAMETERS = {
    "mnist_dnn": 669_706,
    "sign_cnn": 8_402_618,
    "vgg16": 138_357_544,
    "resnet50": 25_610_152,  # v1.5, bias-free convolutions (keras.applications: 25,636,712)
}


@pytest.mark.parametrize("name", list(EXPECTED_PARAMETERS))
def test_parameter_count_at_default_shape(name: str) -> None:
    arch = get_architecture(name)
    model = arch.build()
    assert model.count_params() == EXPECTED_PARAMETERS[name]
    assert model.input_shape == (None, *arch.input_shape)
    assert model.output_shape == (None, arch.num_classes)
    assert model.inputs[0].name == INPUT_NAME


def test_registry_lists_every_builder() -> None:
    assert set(ARCHITECTURES) == set(EXPECTED_PARAMETERS)
    for name in ARCHITECTURES:
        assert callable(getattr(architectures, name))


def test_resnet50_v15_strides_on_the_3x3() -> None:
    model = architectures.resnet50((64, 64, 3), 5)
    assert model.output_shape == (None, 5)
    strided = [
        layer
        for layer in model.layers
        if layer.__class__.__name__ == "Conv2D" and layer.strides == (2, 2)
    ]
    kernels = sorted(layer.kernel_size for layer in strided)
    # The stem's 7x7, then per downsampling group one strided 3x3 and one 1x1 projection.
    assert kernels == [(1, 1)] * 3 + [(3, 3)] * 3 + [(7, 7)]


def test_builders_take_shape_and_classes() -> None:
    assert architectures.mnist_dnn((8, 8), 3).output_shape == (None, 3)
    assert architectures.sign_cnn((28, 28, 1), 24).output_shape == (None, 24)


def test_shape_for_keeps_the_models_rank() -> None:
    assert get_architecture("mnist_dnn").shape_for(32, 32, "grayscale") == (32, 32)
    assert get_architecture("vgg16").shape_for(64, 48, "grayscale") == (64, 48, 1)
    with pytest.raises(ValueError, match="grayscale"):
        get_architecture("mnist_dnn").shape_for(28, 28, "rgb")


def test_unknown_architecture_lists_the_known_ones() -> None:
    with pytest.raises(KeyError, match="mnist_dnn, sign_cnn, vgg16, resnet50"):
        get_architecture("lenet")
