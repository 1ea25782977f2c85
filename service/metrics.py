"""Every Prometheus metric of the server, defined in one place.

One ``Metrics`` object per server owns its own registry (no globals), so several servers
can live in one test process. The core records; protocol adapters never do.

Conventions: one ``primer_`` prefix, base units in names (``_seconds``, ``_bytes``),
``_total`` on counters (prometheus_client appends it), no ``_created`` series. Every
per-request histogram (end to end and the four stages) is observed once per request that
ran, so their counts agree and their sums add up; ``primer_batch_*`` series are observed
once per executed batch.
"""

from __future__ import annotations

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

from service.errors import DeadlineExceededError, PayloadTooLargeError, QueueFullError
from service.gpu_metrics import GpuMemoryCollector

PREFIX = "primer"
LATENCY_BUCKETS = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
)
BATCH_SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
LOAD_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
MODEL_STATES = ("LOADING", "AVAILABLE", "FAILED", "UNLOADING")
REJECT_REASONS = (QueueFullError.reason, DeadlineExceededError.reason, PayloadTooLargeError.reason)
"""Values of the ``reason`` label of ``primer_rejected_requests_total`` (exported from 0)."""
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class Metrics:
    """The metric catalogue, registered on a private registry."""

    def __init__(
        self, registry: CollectorRegistry | None = None, tf_module: object | None = None
    ) -> None:
        disable_created_metrics()  # process-wide switch: no `_created` series, ever
        self.registry = registry or CollectorRegistry(auto_describe=True)
        r = self.registry
        ProcessCollector(registry=r)
        PlatformCollector(registry=r)
        GCCollector(registry=r)
        r.register(GpuMemoryCollector(tf_module))

        model = ["model", "version"]
        self.requests = Counter(
            f"{PREFIX}_requests",
            "Requests answered, by protocol and status code.",
            [*model, "protocol", "code"],
            registry=r,
        )
        self.request_duration = Histogram(
            f"{PREFIX}_request_duration_seconds",
            "End-to-end time inside the server.",
            [*model, "protocol"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.queue_duration = Histogram(
            f"{PREFIX}_queue_duration_seconds",
            "Time a request waited in the batch queue before its batch started.",
            model,
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.preprocess_duration = Histogram(
            f"{PREFIX}_preprocess_duration_seconds",
            "Decoding and validating a request's inputs (image decoding included).",
            model,
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.inference_duration = Histogram(
            f"{PREFIX}_inference_duration_seconds",
            "The one model call that ran a request's batch, observed once per request.",
            model,
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.postprocess_duration = Histogram(
            f"{PREFIX}_postprocess_duration_seconds",
            "From the end of the model call to the encoded response (resuming the request, "
            "slicing its rows, encoding).",
            model,
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.batch_size = Histogram(
            f"{PREFIX}_batch_size",
            "Rows per executed batch (padding included).",
            model,
            buckets=BATCH_SIZE_BUCKETS,
            registry=r,
        )
        self.batch_duration = Histogram(
            f"{PREFIX}_batch_duration_seconds",
            "One model call on one batch, observed once per executed batch.",
            model,
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.batch_padding_rows = Counter(
            f"{PREFIX}_batch_padding_rows",
            "Rows added to reach an allowed batch size.",
            model,
            registry=r,
        )
        self.items = Counter(
            f"{PREFIX}_items", "Rows (items) inferred for clients.", model, registry=r
        )
        self.queue_depth = Gauge(
            f"{PREFIX}_queue_depth", "Requests waiting in the batch queue.", model, registry=r
        )
        self.queue_capacity = Gauge(
            f"{PREFIX}_queue_capacity",
            "The most requests the batch queue holds (max_queue_size); more are shed.",
            model,
            registry=r,
        )
        self.inflight = Gauge(
            f"{PREFIX}_inflight_requests", "Requests being handled by the core.", model, registry=r
        )
        self.rejected = Counter(
            f"{PREFIX}_rejected_requests",
            "Requests refused by load shedding or limits, by reason.",
            [*model, "reason"],
            registry=r,
        )
        self.model_state = Gauge(
            f"{PREFIX}_model_state",
            "1 for the state a model version is in, else 0.",
            [*model, "state"],
            registry=r,
        )
        self._runtimes: dict[tuple[str, int], str] = {}
        self.model_runtime = Gauge(
            f"{PREFIX}_model_runtime",
            "1 for the runtime serving a model version (tensorflow, tflite, onnxruntime...).",
            [*model, "runtime"],
            registry=r,
        )
        self.model_load_duration = Histogram(
            f"{PREFIX}_model_load_duration_seconds",
            "Loading and warming one version.",
            ["model"],
            buckets=LOAD_BUCKETS,
            registry=r,
        )
        self.model_load_failures = Counter(
            f"{PREFIX}_model_load_failures", "Versions that failed to load.", ["model"], registry=r
        )
        self.model_memory = Gauge(
            f"{PREFIX}_model_memory_bytes",
            "Estimated memory a held version takes (variables on disk times the footprint factor).",
            model,
            registry=r,
        )
        self.model_loads_refused = Counter(
            f"{PREFIX}_model_loads_refused",
            "Versions refused before loading, by reason (memory_budget).",
            ["model", "reason"],
            registry=r,
        )
        self.config_reloads = Counter(
            f"{PREFIX}_config_reloads",
            "Settings reloads by outcome: applied, unchanged, invalid (the running settings stay).",
            ["outcome"],
            registry=r,
        )
        for outcome in ("applied", "unchanged", "invalid"):
            self.config_reloads.labels(outcome)
        pair = ["model", "primary", "shadow"]
        self.shadow_requests = Counter(
            f"{PREFIX}_shadow_requests",
            "Mirrored requests by outcome: ok, error (never seen by clients), dropped (shed).",
            [*pair, "outcome"],
            registry=r,
        )
        self.shadow_rows = Counter(
            f"{PREFIX}_shadow_rows", "Rows compared between primary and shadow.", pair, registry=r
        )
        self.shadow_agreements = Counter(
            f"{PREFIX}_shadow_agreements",
            "Compared rows whose top-1 index is the same in primary and shadow.",
            pair,
            registry=r,
        )
        self.shadow_abs_diff = Counter(
            f"{PREFIX}_shadow_abs_diff",
            "Sum over compared rows of the mean absolute difference of the outputs.",
            pair,
            registry=r,
        )
        self.shadow_agreement = Gauge(
            f"{PREFIX}_shadow_agreement",
            "Top-1 agreement of shadow and primary over every compared row (0..1).",
            pair,
            registry=r,
        )
        self.shadow_mean_abs_diff = Gauge(
            f"{PREFIX}_shadow_mean_abs_diff",
            "Mean absolute difference of shadow and primary outputs over every compared row.",
            pair,
            registry=r,
        )
        self.rollout_step = Gauge(
            f"{PREFIX}_rollout_step",
            "Percentage of a model's unversioned requests its rollout sends to the candidate.",
            ["model"],
            registry=r,
        )
        self.traffic_weight = Gauge(
            f"{PREFIX}_traffic_weight",
            "Share (0..1) of a model's unversioned requests routed to a version by its split.",
            model,
            registry=r,
        )
        self.connections_closed = Counter(
            f"{PREFIX}_connections_closed",
            "Connections refused or closed by an edge limit, by protocol and limit "
            "(REST: connection_cap, header_timeout, header_size, body_timeout, "
            "keep_alive_idle; gRPC: max_age, max_idle, client_or_other).",
            ["protocol", "limit"],
            registry=r,
        )
        self.open_connections = Gauge(
            f"{PREFIX}_open_connections",
            "Connections held open, by protocol.",
            ["protocol"],
            registry=r,
        )
        self.grpc_front_restarts = Counter(
            f"{PREFIX}_grpc_front_restarts",
            "Times the gRPC front process exited unexpectedly and was started again.",
            registry=r,
        )
        self.live_accuracy = Gauge(
            f"{PREFIX}_live_accuracy",
            "Share of labelled rows predicted right, over the last accuracy_window labels.",
            model,
            registry=r,
        )
        self.live_accuracy_threshold = Gauge(
            f"{PREFIX}_live_accuracy_threshold",
            "model.json's test accuracy minus accuracy_alert_margin: the alert's floor.",
            model,
            registry=r,
        )
        self.feedback_labelled = Counter(
            f"{PREFIX}_feedback_labelled", "Rows given a ground-truth label.", model, registry=r
        )
        self.feedback_correct = Counter(
            f"{PREFIX}_feedback_correct",
            "Labelled rows the served answer got right.",
            model,
            registry=r,
        )
        self.feedback_rejected = Counter(
            f"{PREFIX}_feedback_rejected",
            "Feedback refused: unknown_request, expired, duplicate, invalid_input.",
            ["model", "reason"],
            registry=r,
        )
        self.payload_log_records = Counter(
            f"{PREFIX}_payload_log_records", "Payload-log records written.", ["model"], registry=r
        )
        self.payload_log_dropped = Counter(
            f"{PREFIX}_payload_log_dropped",
            "Payload-log records dropped: queue_full (the writer is behind) or disk_error.",
            ["model", "reason"],
            registry=r,
        )
        self.drift_psi = Gauge(
            f"{PREFIX}_drift_psi",
            "Population stability index of a live window against the version's reference "
            "profile, by feature: pixels, classes, confidence.",
            [*model, "feature"],
            registry=r,
        )
        self.ood_score = Histogram(
            f"{PREFIX}_ood_score",
            "Out-of-distribution score per answered row: 1 - the maximum softmax probability.",
            model,
            buckets=(0.001, 0.01, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9, 1.0),
            registry=r,
        )
        self.payload_log_disk_errors = Counter(
            f"{PREFIX}_payload_log_disk_errors",
            "Payload-log records the disk refused (disk full, folder unwritable).",
            registry=r,
        )
        self.side_work_items = Counter(
            f"{PREFIX}_side_work_items",
            "Side work after an answer (shadow, payload_log, drift): done, or shed under load.",
            ["kind", "outcome"],
            registry=r,
        )

    def record_shadow(
        self, model: str, primary: str, shadow: str, rows: int, agree: int, abs_diff: float
    ) -> None:
        """Add one mirrored request's comparison to its pair's counters and ratios."""
        pair = (model, primary, shadow)
        self.shadow_rows.labels(*pair).inc(rows)
        self.shadow_agreements.labels(*pair).inc(agree)
        self.shadow_abs_diff.labels(*pair).inc(abs_diff)
        total = self.shadow_rows.labels(*pair)._value.get()
        for ratio, counter in ((self.shadow_agreement, self.shadow_agreements),
                               (self.shadow_mean_abs_diff, self.shadow_abs_diff)):  # fmt: skip
            ratio.labels(*pair).set(counter.labels(*pair)._value.get() / total)

    def set_model_state(self, model: str, version: int, state: str | None) -> None:
        """Set the 0/1 state gauge of a version (None clears it after unloading)."""
        self.model_load_failures.labels(model)  # exported from 0 for every model seen
        for candidate in MODEL_STATES:
            gauge = self.model_state.labels(model, str(version), candidate)
            gauge.set(1 if candidate == state else 0)
        if state is None:
            for candidate in MODEL_STATES:
                self.model_state.remove(model, str(version), candidate)

    def set_model_runtime(self, model: str, version: int, runtime: str | None) -> None:
        """Mark the runtime serving a version (None removes the version's series)."""
        previous = self._runtimes.pop((model, version), None)
        if previous is not None:
            self.model_runtime.remove(model, str(version), previous)
        if runtime is not None:
            self._runtimes[(model, version)] = runtime
            self.model_runtime.labels(model, str(version), runtime).set(1)

    def exposition(self) -> bytes:
        """The Prometheus text exposition of every metric."""
        return generate_latest(self.registry)
