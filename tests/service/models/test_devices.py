"""GPU placement decisions, with TensorFlow's device listing stubbed.

These prove the decisions ``service.models.devices`` makes for 0, 1 and 2 GPUs and what it asks of
TensorFlow (memory growth per GPU, thread pools, tolerating an initialized runtime). They do
not prove that TensorFlow then places ops on a real GPU: no GPU exists on this machine or in
CI, and the GPU image has not been run here.
"""

from __future__ import annotations

import logging
from types import SimpleNamespace
from typing import Any

import pytest

from service.models.devices import choose_device, configure_tensorflow


@pytest.mark.parametrize(
    ("setting", "gpus", "expected"),
    [
        ("auto", 0, "/device:CPU:0"),
        ("auto", 1, "/device:GPU:0"),
        ("auto", 2, "/device:GPU:0"),
        ("cpu", 0, "/device:CPU:0"),
        ("cpu", 2, "/device:CPU:0"),
        ("gpu:0", 1, "/device:GPU:0"),
        ("gpu:0", 2, "/device:GPU:0"),
        ("gpu:1", 2, "/device:GPU:1"),
        (" GPU:1 ", 2, "/device:GPU:1"),
        ("AUTO", 1, "/device:GPU:0"),
    ],
)
def test_choose_device(setting: str, gpus: int, expected: str) -> None:
    assert choose_device(setting, gpus) == expected


@pytest.mark.parametrize(("setting", "gpus"), [("gpu:0", 0), ("gpu:1", 1), ("gpu:2", 2)])
def test_missing_gpu_is_an_error_not_a_silent_cpu_fallback(setting: str, gpus: int) -> None:
    with pytest.raises(ValueError, match=f"TensorFlow sees {gpus} GPU"):
        choose_device(setting, gpus)


@pytest.mark.parametrize(
    "setting", ["", "gpu", "gpu:", "gpu:-1", "gpu:a", "cuda:0", "tpu", "/device:GPU:0", "gpu:0:1"]
)
def test_malformed_settings_are_rejected(setting: str) -> None:
    with pytest.raises(ValueError, match="auto, cpu or gpu:N"):
        choose_device(setting, 2)


class StubTensorFlow:
    """Records what configure_tensorflow asks of ``tf.config``."""

    def __init__(self, gpus: int, fail_with: Exception | None = None) -> None:
        self.devices = [
            SimpleNamespace(name=f"/physical_device:GPU:{i}", device_type="GPU")
            for i in range(gpus)
        ]
        self.calls: list[tuple[str, Any, ...]] = []
        self._fail_with = fail_with
        self.config = SimpleNamespace(
            list_physical_devices=self._list,
            threading=SimpleNamespace(
                set_intra_op_parallelism_threads=lambda n: self._record("intra", n),
                set_inter_op_parallelism_threads=lambda n: self._record("inter", n),
            ),
            experimental=SimpleNamespace(
                set_memory_growth=lambda device, on: self._record("growth", device.name, on)
            ),
        )

    def _list(self, device_type: str) -> list[SimpleNamespace]:
        self.calls.append(("list", device_type))
        return [d for d in self.devices if d.device_type == device_type]

    def _record(self, *call: Any) -> None:
        if self._fail_with is not None:
            raise self._fail_with
        self.calls.append(call)


@pytest.mark.parametrize("gpus", [0, 1, 2])
def test_memory_growth_is_set_on_every_gpu(gpus: int) -> None:
    tf = StubTensorFlow(gpus)
    listed = configure_tensorflow(tf, memory_growth=True, intra_op_threads=0, inter_op_threads=0)
    assert len(listed) == gpus
    assert ("list", "GPU") in tf.calls
    growth = [c for c in tf.calls if c[0] == "growth"]
    assert growth == [("growth", f"/physical_device:GPU:{i}", True) for i in range(gpus)]


def test_memory_growth_can_be_turned_off() -> None:
    tf = StubTensorFlow(2)
    configure_tensorflow(tf, memory_growth=False, intra_op_threads=0, inter_op_threads=0)
    assert [c[2] for c in tf.calls if c[0] == "growth"] == [False, False]


def test_thread_pools_are_set_only_when_asked() -> None:
    tf = StubTensorFlow(0)
    configure_tensorflow(tf, memory_growth=True, intra_op_threads=0, inter_op_threads=0)
    assert not [c for c in tf.calls if c[0] in {"intra", "inter"}]
    tf = StubTensorFlow(1)
    configure_tensorflow(tf, memory_growth=True, intra_op_threads=2, inter_op_threads=3)
    assert ("intra", 2) in tf.calls and ("inter", 3) in tf.calls


def test_an_initialized_runtime_is_tolerated(caplog: pytest.LogCaptureFixture) -> None:
    tf = StubTensorFlow(2, fail_with=RuntimeError("Physical devices cannot be modified"))
    with caplog.at_level(logging.WARNING, logger="service.models.devices"):
        listed = configure_tensorflow(
            tf, memory_growth=True, intra_op_threads=4, inter_op_threads=0
        )
    assert len(listed) == 2, "the GPUs are still reported"
    assert "already initialized" in caplog.text


def test_other_errors_are_not_swallowed() -> None:
    tf = StubTensorFlow(1, fail_with=ValueError("bad device"))
    with pytest.raises(ValueError, match="bad device"):
        configure_tensorflow(tf, memory_growth=True, intra_op_threads=0, inter_op_threads=0)
