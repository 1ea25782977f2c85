"""Transfer learning: the convolutional frontend, the classifier head, and pretrained weights.

The primer splits a CNN into a *frontend* that learns features (the convolution stack) and
a *head* that classifies them. Here the frontend is every layer up to the last one with a
4-D (batch, height, width, channels) output; the head is everything after it: VGG16's
Flatten → Dense 4096 → Dense 4096 → softmax, ResNet50's global average pool → softmax,
the sign CNN's Flatten → Dense 512 → softmax. The MNIST DNN has no frontend.

Pretrained weights come from a ``.weights.h5`` or ``.keras`` file saved by Keras from the
same architecture, or, for VGG16 only, ``imagenet`` (``keras.applications.VGG16``, whose
13 convolutions are the primer's layer for layer; a download on first use). Every frontend
layer must be found with the same variable shapes, or loading fails naming the layer. The
head is loaded only when it fits (same class count and input size) and no new head is asked
for; otherwise it keeps its fresh initialization. ``keras.applications.ResNet50`` is
ResNet v1 with convolution biases, so its weights do not fit the primer's bias-free v1.5.
"""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import keras
import numpy as np

from training.models.registry import ARCHITECTURES, IMAGENET, WeightsError


@dataclass(frozen=True)
class LoadedWeights:
    """What :func:`load_pretrained` loaded.

    Attributes:
        source: the file path, or ``imagenet``.
        frontend_layers: frontend layers whose variables were loaded.
        head: ``loaded`` (the file's head fitted and was kept) or ``new``.
    """

    source: str
    frontend_layers: int
    head: str


def frontend_size(model: keras.Model) -> int:
    """How many of ``model.layers`` form the convolutional frontend (0 if none).

    The frontend ends with the last layer whose output is a 4-D feature map.
    """
    last = 0
    for i, layer in enumerate(model.layers):
        shape = getattr(layer.output, "shape", ())
        if len(shape) == 4 and i > 0:
            last = i + 1
    return last


def split_layers(model: keras.Model) -> tuple[list[keras.layers.Layer], list[keras.layers.Layer]]:
    """The model's layers as (frontend, head)."""
    size = frontend_size(model)
    return list(model.layers[:size]), list(model.layers[size:])


def freeze_frontend(model: keras.Model) -> int:
    """Make the frontend untrainable (batch norm then runs in inference mode); returns its size.

    Raises:
        WeightsError: the model has no convolutional frontend.
    """
    frontend, _ = split_layers(model)
    if not frontend:
        raise WeightsError(f"{model.name} has no convolutional frontend to freeze")
    for layer in frontend:
        layer.trainable = False
    return len(frontend)


def _snake_case(name: str) -> str:
    # keras.src.utils.naming.to_snake_case, which Keras's weight files use
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


def saving_names(model: keras.Model) -> list[str]:
    """The name Keras's weight files give each of ``model.layers`` (class name + counter).

    Keras 3 stores a functional model's variables under ``layers/<name>/vars/<i>`` with
    names from the layer classes in order (``conv2d``, ``conv2d_1``, ...), not the layers'
    own names; the round-trip tests pin this against ``save_weights``.
    """
    used: dict[str, int] = {}
    names = []
    for layer in model.layers:
        base = _snake_case(type(layer).__name__)
        if base in used:
            used[base] += 1
            names.append(f"{base}_{used[base]}")
        else:
            used[base] = 0
            names.append(base)
    return names


def _variables(layer: keras.layers.Layer) -> dict[str, keras.Variable]:
    store: dict[str, keras.Variable] = {}
    layer.save_own_variables(store)
    return store


@contextmanager
def _open_weights(path: Path) -> Iterator[h5py.Group]:
    try:
        if path.name.endswith(".keras"):
            with zipfile.ZipFile(path) as archive:
                data = archive.read("model.weights.h5")
            with h5py.File(io.BytesIO(data), "r") as handle:
                yield handle
        else:
            with h5py.File(path, "r") as handle:
                yield handle
    except FileNotFoundError:
        raise WeightsError(f"weights file not found: {path}") from None
    except (OSError, KeyError, zipfile.BadZipFile) as exc:
        raise WeightsError(
            f"{path}: not a Keras weights file ({exc}); expected a .weights.h5 or .keras file"
        ) from exc


def _file_weights(path: Path, model: keras.Model) -> dict[str, dict[str, np.ndarray]]:
    weights: dict[str, dict[str, np.ndarray]] = {}
    with _open_weights(path) as handle:
        group = handle.get("layers")
        if not isinstance(group, h5py.Group):
            raise WeightsError(f"{path}: no 'layers' group; expected weights of a Keras model")
        for name in saving_names(model):
            found = group.get(f"{name}/vars")
            if isinstance(found, h5py.Group):
                weights[name] = {key: np.asarray(found[key]) for key in found}
    return weights


def _imagenet_weights(model: keras.Model, arch: str) -> dict[str, dict[str, np.ndarray]]:
    if arch not in ARCHITECTURES or not ARCHITECTURES[arch].imagenet:
        fitting = [a.name for a in ARCHITECTURES.values() if a.imagenet]
        raise WeightsError(
            f"imagenet weights exist for {', '.join(fitting)} only; "
            f"keras.applications' {arch} does not match the primer's {arch} layer for layer"
        )
    try:
        source = keras.applications.VGG16(
            include_top=False, weights=IMAGENET, input_shape=tuple(model.input_shape[1:])
        )
    except Exception as exc:  # Keras reports a failed download as a bare Exception
        raise WeightsError(
            f"cannot get the imagenet weights of {arch} ({exc}); they are downloaded on "
            f"first use: check the network, or give a .weights.h5/.keras file"
        ) from exc
    weights = {}
    for name, layer in zip(saving_names(source), source.layers, strict=True):
        store: dict[str, keras.Variable] = {}
        layer.save_own_variables(store)
        if store:
            weights[name] = {key: np.asarray(value) for key, value in store.items()}
    return weights


def _shapes(variables: dict[str, Any]) -> list[tuple[int, ...]]:
    """Variable shapes in Keras's order ("0", "1", ...), from arrays or variables."""
    return [tuple(variables[key].shape) for key in sorted(variables, key=int)]


def _fits(layer: keras.layers.Layer, found: dict[str, np.ndarray] | None) -> bool:
    return found is not None and _shapes(found) == _shapes(_variables(layer))


def load_pretrained(model: keras.Model, source: str, *, arch: str, new_head: bool) -> LoadedWeights:
    """Load pretrained weights into ``model``: the whole frontend, and the head if it fits.

    Args:
        model: the freshly built model (its head sized for the new classes).
        source: a ``.weights.h5`` or ``.keras`` path, or ``imagenet``.
        arch: the architecture name (for ``imagenet`` and messages).
        new_head: never load the head, even when the file's head fits.

    Raises:
        WeightsError: unreadable file, or a frontend layer missing or shaped differently.
    """
    frontend, head = split_layers(model)
    if not frontend:
        raise WeightsError(f"{arch} has no convolutional frontend to load weights into")
    names = dict(zip(model.layers, saving_names(model), strict=True))
    if source == IMAGENET:
        found, where = _imagenet_weights(model, arch), f"imagenet {arch}"
    else:
        found, where = _file_weights(Path(source), model), source
    loaded = 0
    for layer in frontend:
        expected = _variables(layer)
        if not expected:
            continue
        name = names[layer]
        if not _fits(layer, found.get(name)):
            got = _shapes(found[name]) if name in found else "nothing"
            raise WeightsError(
                f"{where}: layer {name} holds {got}, {arch} at input "
                f"{list(model.input_shape[1:])} expects {_shapes(expected)}; expected weights "
                f"saved from the same architecture"
            )
        layer.load_own_variables(found[name])
        loaded += 1
    weighted_head = [layer for layer in head if _variables(layer)]
    head_fits = all(_fits(layer, found.get(names[layer])) for layer in weighted_head)
    if new_head or not head_fits:
        return LoadedWeights(source, loaded, "new")
    for layer in weighted_head:
        layer.load_own_variables(found[names[layer]])
    return LoadedWeights(source, loaded, "loaded")
