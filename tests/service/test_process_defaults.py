"""primer-serve's process defaults: oneDNN off and a fixed mmap threshold, before TensorFlow."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.conftest import REPO_ROOT

SCRIPT = """
import os, sys
from service import process_defaults
assert process_defaults.apply() is True
print("onednn", os.environ["TF_ENABLE_ONEDNN_OPTS"])
import tensorflow as tf
tf.constant(1.0) + 1.0
assert process_defaults.apply() is False, "too late once TensorFlow is imported"
"""


def run(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k != "TF_ENABLE_ONEDNN_OPTS"}
    return subprocess.run(
        [sys.executable, "-c", SCRIPT],
        env={**clean, "TF_CPP_MIN_LOG_LEVEL": "0", **env},
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )


def test_onednn_is_off_before_tensorflow_loads() -> None:
    result = run({})
    assert "onednn 0" in result.stdout
    assert "oneDNN custom operations are on" not in result.stderr


def test_the_environment_wins() -> None:
    result = run({"TF_ENABLE_ONEDNN_OPTS": "1"})
    assert "onednn 1" in result.stdout
    assert "oneDNN custom operations are on" in result.stderr


def test_the_mmap_threshold_is_set_through_glibc() -> None:
    from service import process_defaults

    assert process_defaults.set_mmap_threshold(process_defaults.MMAP_THRESHOLD_BYTES)
