"""Device placement decisions: GPU when TensorFlow sees one, CPU otherwise.

The decisions are pure functions over the list of physical devices, so they are tested
without a GPU; ``configure_tensorflow`` applies them to the TensorFlow runtime once.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from typing import Any

logger = logging.getLogger(__name__)
_GPU_SETTING = re.compile(r"^gpu:(\d+)$")


def choose_device(setting: str, gpu_count: int) -> str:
    """Map a placement setting to a TensorFlow device string.

    Args:
        setting: ``auto`` (first GPU if any, else CPU), ``cpu`` or ``gpu:N``.
        gpu_count: how many GPUs TensorFlow lists.

    Returns:
        ``/device:GPU:N`` or ``/device:CPU:0``.

    Raises:
        ValueError: an unknown setting, or ``gpu:N`` with no such GPU.
    """
    setting = setting.strip().lower()
    if setting == "auto":
        return "/device:GPU:0" if gpu_count > 0 else "/device:CPU:0"
    if setting == "cpu":
        return "/device:CPU:0"
    match = _GPU_SETTING.match(setting)
    if not match:
        raise ValueError(f"device must be auto, cpu or gpu:N, got {setting!r}")
    index = int(match.group(1))
    if index >= gpu_count:
        raise ValueError(f"device {setting} requested but TensorFlow sees {gpu_count} GPU(s)")
    return f"/device:GPU:{index}"


def configure_tensorflow(
    tf: Any, *, memory_growth: bool, intra_op_threads: int, inter_op_threads: int
) -> Sequence[Any]:
    """Apply thread-pool and GPU memory settings before TensorFlow initializes.

    Args:
        tf: the ``tensorflow`` module (passed in so tests can hand a stub).
        memory_growth: allocate GPU memory on demand rather than all at start.
        intra_op_threads: 0 keeps TensorFlow's default.
        inter_op_threads: 0 keeps TensorFlow's default.

    Returns:
        The physical GPUs TensorFlow lists.
    """
    gpus = list(tf.config.list_physical_devices("GPU"))
    try:
        if intra_op_threads:
            tf.config.threading.set_intra_op_parallelism_threads(intra_op_threads)
        if inter_op_threads:
            tf.config.threading.set_inter_op_parallelism_threads(inter_op_threads)
        for gpu in gpus:
            tf.config.experimental.set_memory_growth(gpu, memory_growth)
    except RuntimeError as exc:  # TensorFlow already initialized (e.g. a second server)
        logger.warning("TensorFlow runtime already initialized, settings kept: %s", exc)
    logger.info("TensorFlow sees %d GPU(s): %s", len(gpus), [g.name for g in gpus])
    return gpus
