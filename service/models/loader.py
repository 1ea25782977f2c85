"""Load and warm one version (TF Serving's Loader role). Blocking: run in the loader thread.

A version is read from its folder (``model.json`` through ``tf.io.gfile``, so remote base
paths work), loaded on its device and warmed at every batch size the batcher will form,
before the manager marks it AVAILABLE.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from contract.layout import MODEL_CARD_PATH
from contract.model_card import ModelCard, parse_model_card
from service.models import memory, storage
from service.models.runtime import Runtime, SavedModelRuntime
from service.models.session_runtime import SessionRuntime, is_tf1_saved_model
from service.models.warmup import warm_up


@dataclass(frozen=True)
class LoadedModel:
    """What loading one version produced."""

    runtime: Runtime
    card: ModelCard | None
    warmup_requests: int


def read_card(version_dir: str) -> ModelCard | None:
    """The version's ``assets.extra/model.json``; None when it has none."""
    path = storage.join(version_dir, *MODEL_CARD_PATH.parts)
    if not storage.exists(path):
        return None
    return parse_model_card(storage.read_bytes(path), path)


def open_runtime(path: str, device: str) -> Runtime:
    """The runtime for one SavedModel: a TF1 ``Session`` for a graph written by TF1's
    builder (as TF Serving runs it: feeds by tensor name, init ops, reference variables),
    else TensorFlow 2's loader."""
    if is_tf1_saved_model(path):
        return SessionRuntime(path, device=device)
    return SavedModelRuntime(path, device=device)


def load_version(path: str, device: str, batch_sizes: Iterable[int]) -> LoadedModel:
    """Load the version at ``path`` on ``device`` and warm it up.

    Raises:
        Exception: whatever the card, TensorFlow or the warm-up raise; the manager reports
            it as the version's FAILED status.
    """
    card = read_card(path)
    with memory.loading():
        runtime = open_runtime(path, device)
        try:
            warmed = warm_up(runtime, path, batch_sizes)
        except BaseException:
            runtime.close()
            raise
    return LoadedModel(runtime, card, warmed)
