"""Memory comes back after an unload: a served process does not grow swap after swap.

A model with 256 MiB of variables is published version after version into a running
``primer-serve`` (a subprocess, so its RSS is its own), in each memory mode. With oneDNN's
pooling allocator, the process kept every unloaded version's pages and stayed at its
two-copy peak; with glibc's sliding mmap threshold, it grew by most of a copy per swap.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import pytest
import tensorflow as tf

from loadtest.memory import RssSampler, publish, wait_until_only
from tests.suites.reliability.subprocess_server import serve

MODEL = "big"
SWAPS = 5


class _Big(tf.Module):
    """y = x · w[:3] with 64 M float32 weights held (256 MiB of variables)."""

    def __init__(self) -> None:
        super().__init__()
        self.weights = tf.Variable(tf.random.stateless_normal([64, 1 << 20], seed=(1, 2)))

    @tf.function(input_signature=[tf.TensorSpec([None, 3], tf.float32, name="x")])
    def serve(self, x: tf.Tensor) -> dict[str, tf.Tensor]:
        return {"y": tf.matmul(x, self.weights[:3, :4])}


def median_rss(sampler: RssSampler, seconds: float) -> float:
    start = time.monotonic()
    time.sleep(seconds)
    return statistics.median(sampler.between(start, time.monotonic()))


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["throughput", "frugal"])
def test_rss_returns_to_the_steady_state_after_every_swap(tmp_path: Path, mode: str) -> None:
    source = tmp_path / "source"
    module = _Big()
    tf.saved_model.save(module, str(source), signatures={"serving_default": module.serve})
    repo = tmp_path / "models"
    (repo / MODEL).mkdir(parents=True)
    publish(source, repo, 1, MODEL)
    config = {"poll_interval_s": 0.2, "memory_mode": mode}
    with serve(repo, tmp_path, config) as server, RssSampler(server.process.pid) as rss:
        steady = median_rss(rss, 2)
        peaks, settled = [], []
        for version in range(2, SWAPS + 2):
            started = time.monotonic()
            publish(source, repo, version, MODEL)
            wait_until_only(server.rest_url, version, 120, MODEL)
            peaks.append(max(rss.between(started, time.monotonic())) / steady)
            settled.append(median_rss(rss, 2) / steady)
    print(f"steady {steady / 2**20:.0f} MiB, peaks {peaks}, settled {settled}")
    assert max(peaks) <= 2.15, "a swap holds two copies at most"
    assert settled[-1] <= 1.05, f"RSS grew {settled[-1]:.3f}x over {SWAPS} swaps"
