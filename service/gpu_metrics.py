"""GPU memory per device as a Prometheus collector, read from TensorFlow on each scrape."""

from __future__ import annotations

from typing import Any

from prometheus_client.core import GaugeMetricFamily


class GpuMemoryCollector:
    """GPU memory in use per device, read from TensorFlow when it sees a GPU."""

    def __init__(self, tf_module: object | None = None) -> None:
        self._tf = tf_module

    def collect(self) -> list[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "primer_gpu_memory_used_bytes",
            "GPU memory TensorFlow has in use, per device.",
            labels=["device"],
        )
        tf: Any = self._tf
        if tf is None:
            return [family]
        for index, _ in enumerate(tf.config.list_physical_devices("GPU")):
            device = f"GPU:{index}"
            try:
                info = tf.config.experimental.get_memory_info(device)
            except (ValueError, RuntimeError):  # device not initialised (yet): no sample
                continue
            family.add_metric([device], float(info.get("current", 0)))
        return [family]
