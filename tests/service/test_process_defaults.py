"""primer-serve's memory modes: oneDNN's allocator and glibc's thresholds, set before
TensorFlow loads, and the load-time mmap threshold (each check in a fresh interpreter)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import REPO_ROOT

ONEDNN = """
import os
from service import process_defaults
assert process_defaults.apply({mode!r}) is True
for name in ("TF_ENABLE_ONEDNN_OPTS", "TF_ONEDNN_USE_SYSTEM_ALLOCATOR"):
    print(name, os.environ.get(name))
import tensorflow as tf
tf.constant(1.0) + 1.0
assert process_defaults.apply({mode!r}) is False, "too late once TensorFlow is imported"
"""

# Where glibc puts a 4 MiB block that the heap's free space cannot hold: a mapping of its
# own (mallinfo2's hblks counts them) or the heap. Under ``throughput`` it is the heap
# while serving, a mapping while loading.
THRESHOLDS = """
import ctypes
from service import process_defaults
assert process_defaults.apply({mode!r})
from service.models import memory
libc = ctypes.CDLL("libc.so.6")
class Info(ctypes.Structure):
    names = "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost"
    _fields_ = [(n, ctypes.c_size_t) for n in names.split()]
libc.mallinfo2.restype = Info
libc.malloc.restype = ctypes.c_void_p
def mapped_on_its_own():
    libc.malloc_trim(0)  # else the heap's free top serves the block, whatever the threshold
    before = libc.mallinfo2().hblks
    block = libc.malloc(4 << 20)
    mapped = libc.mallinfo2().hblks > before
    libc.free(ctypes.c_void_p(block))
    return mapped
print("serving", mapped_on_its_own())
try:
    with memory.loading():
        print("loading", mapped_on_its_own())
        raise RuntimeError("a load that fails")
except RuntimeError:
    pass
print("after", mapped_on_its_own())
"""


def run(script: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    names = ("TF_ENABLE_ONEDNN_OPTS", "TF_ONEDNN_USE_SYSTEM_ALLOCATOR", "MALLOC_MMAP_THRESHOLD_")
    clean = {k: v for k, v in os.environ.items() if k not in names}
    return subprocess.run(
        [sys.executable, "-c", script],
        env={**clean, "TF_CPP_MIN_LOG_LEVEL": "0", **(env or {})},
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )


def test_throughput_keeps_onednn_with_buffers_from_malloc() -> None:
    result = run(ONEDNN.format(mode="throughput"))
    assert "TF_ONEDNN_USE_SYSTEM_ALLOCATOR 1" in result.stdout
    assert "TF_ENABLE_ONEDNN_OPTS None" in result.stdout
    assert "oneDNN custom operations are on" in result.stderr


def test_frugal_turns_onednn_off() -> None:
    result = run(ONEDNN.format(mode="frugal"))
    assert "TF_ENABLE_ONEDNN_OPTS 0" in result.stdout
    assert "oneDNN custom operations are on" not in result.stderr


def test_the_environment_wins() -> None:
    result = run(ONEDNN.format(mode="frugal"), {"TF_ENABLE_ONEDNN_OPTS": "1"})
    assert "TF_ENABLE_ONEDNN_OPTS 1" in result.stdout
    assert "oneDNN custom operations are on" in result.stderr


def test_throughput_maps_large_blocks_on_their_own_only_while_loading() -> None:
    result = run(THRESHOLDS.format(mode="throughput"))
    assert result.stdout.split() == ["serving", "False", "loading", "True", "after", "False"]


def test_frugal_maps_large_blocks_on_their_own_always() -> None:
    result = run(THRESHOLDS.format(mode="frugal"))
    assert result.stdout.split() == ["serving", "True", "loading", "True", "after", "True"]


@pytest.mark.parametrize("mode", ["throughput", "frugal"])
def test_a_threshold_in_the_environment_is_left_alone(mode: str) -> None:
    result = run(THRESHOLDS.format(mode=mode), {"MALLOC_MMAP_THRESHOLD_": str(16 << 20)})
    assert result.stdout.split() == ["serving", "False", "loading", "False", "after", "False"]


COLLECTOR = """
import gc, weakref
from service import process_defaults
class Node:
    pass
def churn():
    runs, freed = [], []
    def count(phase, info):
        if phase == "start":
            runs.append(info["generation"])
    gc.callbacks.append(count)
    for _ in range(100_000):  # short-lived cycles: only the collector can free them
        node = Node()
        node.self = node
        weakref.finalize(node, freed.append, 1)
    del node
    gc.callbacks.remove(count)
    return len(runs), len(freed)
print(*churn())  # CPython's thresholds
process_defaults.apply("throughput")
print(*churn())
"""


def test_the_collector_runs_less_often_and_still_frees_cycles() -> None:
    before_runs, before_freed, runs, freed = map(int, run(COLLECTOR).stdout.split())
    assert before_freed >= 90_000 and before_runs >= 100
    assert 1 <= runs <= before_runs / 10, (before_runs, runs)
    assert freed >= 90_000, "cycles are still collected without an explicit gc.collect()"
