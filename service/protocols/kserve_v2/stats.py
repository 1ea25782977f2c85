"""Triton's statistics extension (``GET /v2/models/{m}/stats``, gRPC ``ModelStatistics``).

Read from the server's Prometheus metrics, so perf_analyzer's server-side figures are the
same numbers ``/metrics`` shows: successful and failed requests, time queued, preprocessing
(compute_input), model calls (compute_infer) and postprocessing (compute_output), counted
per request as Triton does; ``inference_count`` is rows served, ``execution_count``
batches run.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from service.inference.core import InferenceCore
from service.metrics import PREFIX, Metrics

_STAGES = {
    f"{PREFIX}_queue_duration_seconds": "queue",
    f"{PREFIX}_preprocess_duration_seconds": "compute_input",
    f"{PREFIX}_inference_duration_seconds": "compute_infer",
    f"{PREFIX}_postprocess_duration_seconds": "compute_output",
}
Key = tuple[str, str]


def _duration(count: float = 0.0, seconds: float = 0.0) -> dict[str, int]:
    return {"count": int(count), "ns": int(seconds * 1e9)}


def _read(metrics: Metrics) -> dict[Key, dict[str, float]]:
    """(model, version) → the counters and sums the statistics are made of."""
    values: dict[Key, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for family in metrics.registry.collect():
        for sample in family.samples:
            labels = sample.labels
            if "model" not in labels or "version" not in labels:
                continue
            key = (labels["model"], labels["version"])
            name = sample.name
            if name == f"{PREFIX}_requests_total":
                outcome = "ok" if labels.get("code") == "OK" else "fail"
                values[key][f"{outcome}_count"] += sample.value
            elif name == f"{PREFIX}_request_duration_seconds_sum":
                values[key]["request_s"] += sample.value
            elif name == f"{PREFIX}_items_total":
                values[key]["items"] += sample.value
            elif name == f"{PREFIX}_batch_size_count":
                values[key]["batches"] += sample.value
            elif name.endswith(("_sum", "_count")) and family.name in _STAGES:
                stage = _STAGES[family.name]
                values[key][f"{stage}_{name.rsplit('_', 1)[1]}"] += sample.value
    return values


def _compute(v: dict[str, float]) -> dict[str, dict[str, int]]:
    """The compute stages counted once per successful request, as Triton counts them
    (perf_analyzer requires the three counts to agree). ``compute_infer`` holds the total
    model time, so its mean is the model time per request amortized over batching; the
    sums stay additive, so differences between two readings remain exact."""
    requests = v.get("ok_count", 0.0)
    return {
        stage: _duration(requests, v.get(f"{stage}_sum", 0))
        for stage in ("compute_input", "compute_infer", "compute_output")
    }


def model_statistics(
    core: InferenceCore, metrics: Metrics, name: str, version: int | None
) -> dict[str, Any]:
    """Statistics of every loaded version of one model (or of every model for ``""``)."""
    models = [name] if name else core.model_names()
    values = _read(metrics)
    stats = []
    for model in models:
        for status in core.statuses(model):
            if version is not None and status.version != version:
                continue
            v = values.get((model, str(status.version)), {})
            requests = v.get("ok_count", 0.0) + v.get("fail_count", 0.0)
            ok_share = v.get("ok_count", 0.0) / requests if requests else 0.0
            stats.append(
                {
                    "name": model,
                    "version": str(status.version),
                    "last_inference": 0,
                    "inference_count": int(v.get("items", 0)),
                    "execution_count": int(v.get("batches", 0)),
                    "inference_stats": {
                        "success": _duration(
                            v.get("ok_count", 0), v.get("request_s", 0) * ok_share
                        ),
                        "fail": _duration(
                            v.get("fail_count", 0), v.get("request_s", 0) * (1 - ok_share)
                        ),
                        "queue": _duration(v.get("queue_count", 0), v.get("queue_sum", 0)),
                        **_compute(v),
                    },
                }
            )
    return {"model_stats": stats}
