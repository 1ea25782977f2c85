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
from service.models.runtime_choice import choose
from service.models.session_runtime import SessionRuntime, is_tf1_saved_model
from service.models.warmup import warm_up


@dataclass(frozen=True)
class LoadedModel:
    """What loading one version produced."""

    runtime: Runtime
    card: ModelCard | None
    warmup_requests: int
    runtime_name: str = "tensorflow"
    """The runtime serving the version (``tensorflow``, ``tflite``, ``onnxruntime``...)."""
    runtime_timings_s: dict[str, float] | None = None
    """``auto``'s seconds per timing pass, by runtime."""
    failed_variants: dict[str, str] | None = None
    """Variants that could not be opened (FAILED), with the reason."""


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


def load_version(
    path: str,
    device: str,
    batch_sizes: Iterable[int],
    runtime: str = "tensorflow",
    threads: int = 2,
) -> LoadedModel:
    """Load the version at ``path`` on ``device`` with ``runtime`` and warm it up.

    Raises:
        Exception: whatever the card, TensorFlow or the warm-up raise; the manager reports
            it as the version's FAILED status.
    """
    card = read_card(path)
    sizes = list(batch_sizes)
    gated = list(card.variants) if card is not None else []
    with memory.loading():
        choice = choose(
            path,
            runtime,
            device,
            lambda: open_runtime(path, device),
            gated,
            sizes,
            threads=threads,
        )
        try:
            warmed = warm_up(choice.runtime, path, sizes)
        except BaseException:
            choice.runtime.close()
            raise
    return LoadedModel(choice.runtime, card, warmed, choice.name, choice.timings_s, choice.failed)
