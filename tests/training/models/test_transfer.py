"""Transfer learning: frontend/head split, pretrained weights, and a frozen frontend."""

from __future__ import annotations

from pathlib import Path

import h5py
import keras
import numpy as np
import pytest

from training.models.architectures import mnist_dnn, resnet50, sign_cnn, vgg16
from training.models.registry import WeightsError
from training.models.transfer import (
    freeze_frontend,
    load_pretrained,
    saving_names,
    split_layers,
)

SMALL = (32, 32, 3)


def _weights(layers: list[keras.layers.Layer]) -> list[np.ndarray]:
    """Every variable of the layers, trainable or not (batch norm statistics included)."""
    return [v.numpy() for layer in layers for v in layer.weights]


def _equal(a: list[np.ndarray], b: list[np.ndarray]) -> bool:
    return len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))


def _perturb_batch_norm(model: keras.Model) -> None:
    """Give batch norm non-default statistics, so loading them is visible."""
    rng = np.random.default_rng(0)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.moving_mean.assign(rng.normal(0, 0.01, layer.moving_mean.shape))
            layer.moving_variance.assign(1 + 0.1 * rng.random(layer.moving_variance.shape))


def test_frontend_is_the_convolution_stack_and_the_head_the_classifier() -> None:
    heads = {
        "vgg16": (vgg16(SMALL, 3), ["Flatten", "Dense", "Dense", "Dense"]),
        "resnet50": (resnet50(SMALL, 3), ["GlobalAveragePooling2D", "Dense"]),
        "sign_cnn": (sign_cnn((16, 16, 1), 3), ["Flatten", "Dense", "Dense"]),
    }
    for name, (model, head_types) in heads.items():
        frontend, head = split_layers(model)
        assert [type(layer).__name__ for layer in head] == head_types, name
        assert len(frontend[-1].output.shape) == 4
        assert head[-1].name == "probabilities"
    assert split_layers(mnist_dnn())[0] == []
    with pytest.raises(WeightsError, match="mnist_dnn has no convolutional frontend"):
        freeze_frontend(mnist_dnn())


def test_saving_names_are_those_of_keras_weight_files(tmp_path: Path) -> None:
    model = resnet50(SMALL, 3)
    model.save_weights(tmp_path / "r.weights.h5")
    with h5py.File(tmp_path / "r.weights.h5") as handle:
        stored = {name for name in handle["layers"] if len(handle[f"layers/{name}/vars"])}
    names = saving_names(model)
    assert len(names) == len(set(names)) == len(model.layers)
    assert stored == {n for n, layer in zip(names, model.layers, strict=True) if layer.weights}


def test_pretrained_frontend_loads_and_a_new_head_is_sized_for_the_classes(
    tmp_path: Path,
) -> None:
    source = resnet50(SMALL, 7)
    _perturb_batch_norm(source)
    source.save_weights(tmp_path / "source.weights.h5")
    source.save(tmp_path / "source.keras")
    for path in (tmp_path / "source.weights.h5", tmp_path / "source.keras"):
        target = resnet50(SMALL, 3)  # another class count: the head cannot come from the file
        fresh_head = _weights(split_layers(target)[1])
        loaded = load_pretrained(target, str(path), arch="resnet50", new_head=False)
        assert loaded.head == "new" and loaded.frontend_layers == 106  # 53 conv + 53 batch norm
        assert _equal(_weights(split_layers(target)[0]), _weights(split_layers(source)[0]))
        assert _equal(_weights(split_layers(target)[1]), fresh_head)


def test_a_head_that_fits_is_loaded_unless_a_new_one_is_asked_for(tmp_path: Path) -> None:
    source = sign_cnn((16, 16, 1), 7)
    path = str(tmp_path / "sign.weights.h5")
    source.save_weights(path)
    same = sign_cnn((16, 16, 1), 7)  # same classes and input: the whole model loads
    assert load_pretrained(same, path, arch="sign_cnn", new_head=False).head == "loaded"
    assert _equal(_weights(same.layers), _weights(source.layers))
    again = sign_cnn((16, 16, 1), 7)
    assert load_pretrained(again, path, arch="sign_cnn", new_head=True).head == "new"
    assert _equal(_weights(split_layers(again)[0]), _weights(split_layers(source)[0]))
    assert not _equal(_weights(split_layers(again)[1]), _weights(split_layers(source)[1]))
    wider = sign_cnn((24, 24, 1), 7)  # Flatten → Dense no longer fits: a new head
    assert load_pretrained(wider, path, arch="sign_cnn", new_head=False).head == "new"


def test_vgg16_weights_load_at_another_input_size(tmp_path: Path) -> None:
    source = vgg16((64, 64, 3), 5)
    source.save_weights(tmp_path / "v.weights.h5")
    target = vgg16(SMALL, 5)  # the Dense 4096 after Flatten differs: a new head
    loaded = load_pretrained(target, str(tmp_path / "v.weights.h5"), arch="vgg16", new_head=False)
    assert (loaded.frontend_layers, loaded.head) == (13, "new")
    assert _equal(_weights(split_layers(target)[0]), _weights(split_layers(source)[0]))


def test_weights_of_another_architecture_are_refused_naming_the_layer(tmp_path: Path) -> None:
    resnet50(SMALL, 3).save_weights(tmp_path / "resnet.weights.h5")
    with pytest.raises(WeightsError) as info:
        load_pretrained(vgg16(SMALL, 3), str(tmp_path / "resnet.weights.h5"), arch="vgg16",
                        new_head=True)  # fmt: skip
    message = str(info.value)
    assert "layer conv2d holds [(7, 7, 3, 64)]" in message
    assert "expects [(3, 3, 3, 64), (64,)]" in message and "same architecture" in message
    (tmp_path / "junk.keras").write_bytes(b"not a zip")
    with pytest.raises(WeightsError, match="not a Keras weights file"):
        load_pretrained(vgg16(SMALL, 3), str(tmp_path / "junk.keras"), arch="vgg16", new_head=True)


def test_imagenet_weights_come_from_keras_applications_layer_for_layer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    made: list[keras.Model] = []
    real = keras.applications.VGG16

    def offline_vgg16(**kwargs: object) -> keras.Model:
        assert kwargs["weights"] == "imagenet" and kwargs["include_top"] is False
        made.append(real(**{**kwargs, "weights": None}))  # no download in tests
        return made[-1]

    monkeypatch.setattr(keras.applications, "VGG16", offline_vgg16)
    target = vgg16(SMALL, 4)
    loaded = load_pretrained(target, "imagenet", arch="vgg16", new_head=False)
    assert (loaded.frontend_layers, loaded.head) == (13, "new")
    assert _equal(_weights(split_layers(target)[0]), _weights(made[0].layers))
    with pytest.raises(WeightsError, match="imagenet weights exist for vgg16 only"):
        load_pretrained(resnet50(SMALL, 4), "imagenet", arch="resnet50", new_head=False)


def test_frozen_frontend_keeps_every_weight_while_the_head_trains() -> None:
    model = resnet50(SMALL, 3)
    _perturb_batch_norm(model)
    freeze_frontend(model)
    frontend, head = split_layers(model)
    before_frontend, before_head = _weights(frontend), _weights(head)
    rng = np.random.default_rng(0)
    x = rng.random((8, *SMALL), dtype=np.float32)
    y = rng.integers(0, 3, 8)
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="sparse_categorical_crossentropy")
    model.fit(x, y, batch_size=4, epochs=1, verbose=0)
    assert _equal(_weights(frontend), before_frontend)  # batch norm statistics too
    after_head = _weights(head)
    assert all(not np.array_equal(a, b) for a, b in zip(after_head, before_head, strict=True))


def test_a_failed_imagenet_download_is_one_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    def offline(**kwargs: object) -> keras.Model:
        raise Exception("URL fetch failure on https://storage.googleapis.com/...")

    monkeypatch.setattr(keras.applications, "VGG16", offline)
    with pytest.raises(WeightsError, match="cannot get the imagenet weights of vgg16"):
        load_pretrained(vgg16(SMALL, 2), "imagenet", arch="vgg16", new_head=True)
