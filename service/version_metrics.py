"""The metric children of one model version, resolved once per version."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import Counter, Histogram

from service.metrics import REJECT_REASONS, Metrics


class VersionMetrics:
    """The metric children of one model version, resolved once (labels cost per lookup).

    It is the batcher's ``BatchObserver`` (``batch_ran``).
    """

    def __init__(self, metrics: Metrics, model: str, version: int) -> None:
        labels = (model, str(version))
        self._metrics = metrics
        self._labels = labels
        self.queue_duration = metrics.queue_duration.labels(*labels)
        self.preprocess_duration = metrics.preprocess_duration.labels(*labels)
        self.inference_duration = metrics.inference_duration.labels(*labels)
        self.postprocess_duration = metrics.postprocess_duration.labels(*labels)
        self.batch_size = metrics.batch_size.labels(*labels)
        self.batch_duration = metrics.batch_duration.labels(*labels)
        self.padding_rows = metrics.batch_padding_rows.labels(*labels)
        self.items = metrics.items.labels(*labels)
        self.queue_depth = metrics.queue_depth.labels(*labels)
        self.inflight = metrics.inflight.labels(*labels)
        self._rejected = {
            reason: metrics.rejected.labels(*labels, reason) for reason in REJECT_REASONS
        }
        self._per_protocol: dict[tuple[str, str], tuple[Counter, Histogram]] = {}

    def track(
        self, queue_depth: Callable[[], int], inflight: Callable[[], int], queue_capacity: int
    ) -> None:
        """Read the queue depth and in-flight count at scrape time, not on every request;
        ``queue_capacity`` is the fixed bound the depth is measured against."""
        self._metrics.queue_capacity.labels(*self._labels).set(queue_capacity)
        self.queue_depth.set_function(queue_depth)
        self.inflight.set_function(inflight)

    def batch_ran(self, rows: int, padding: int, inference_s: float) -> None:
        self.batch_size.observe(rows)
        self.batch_duration.observe(inference_s)
        if padding:
            self.padding_rows.inc(padding)

    def rejected(self, reason: str) -> None:
        child = self._rejected.get(reason)
        if child is None:
            child = self._rejected[reason] = self._metrics.rejected.labels(*self._labels, reason)
        child.inc()

    def request_done(self, protocol: str, code: str, duration_s: float) -> None:
        """Count one answered request and observe its end-to-end latency."""
        key = (protocol, code)
        children = self._per_protocol.get(key)
        if children is None:
            children = (
                self._metrics.requests.labels(*self._labels, protocol, code),
                self._metrics.request_duration.labels(*self._labels, protocol),
            )
            self._per_protocol[key] = children
        children[0].inc()
        children[1].observe(duration_s)
