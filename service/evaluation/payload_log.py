"""The sampled payload log: JSONL records of answered requests, written off the event loop.

``answered`` runs on the event loop: it draws the sample (one seeded generator per model),
builds a small record and puts it on a bounded queue without waiting. One writer thread
appends the records to ``payload-<n>.jsonl`` files, rotating past ``max_file_bytes`` and
keeping ``max_files``. When the queue is full the record is dropped and counted; when the
disk refuses a write (full, unwritable) the record is dropped and the error counted. A
request is never slowed or failed by its log record.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import queue
import random
import threading
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from service.evaluation_settings import EvaluationSettings
from service.inference.events import Answered
from service.metrics import Metrics

logger = logging.getLogger(__name__)
TOP_K = 5
_STOP = object()


def digest(value: Any) -> str:
    """SHA-256 of an input: bytes as given, arrays by dtype, shape and contents."""
    hasher = hashlib.sha256()
    if isinstance(value, np.ndarray) and value.dtype != object:
        hasher.update(f"{value.dtype.str}{value.shape}".encode())
        hasher.update(np.ascontiguousarray(value).tobytes())
    elif isinstance(value, np.ndarray):
        for item in value.ravel():
            hasher.update(item if isinstance(item, bytes) else str(item).encode())
    else:
        hasher.update(bytes(value) if isinstance(value, bytes) else str(value).encode())
    return hasher.hexdigest()


def _input_record(value: np.ndarray, keep: bool, limit: int) -> dict[str, Any]:
    record: dict[str, Any] = {"sha256": digest(value), "shape": list(value.shape)}
    if not keep:
        return record
    if value.dtype == object:
        items = [item for item in value.ravel() if isinstance(item, bytes)]
        if items and sum(len(item) for item in items) <= limit:
            record["b64"] = [base64.b64encode(item).decode() for item in items]
    elif value.nbytes <= limit:
        record["dtype"] = value.dtype.str
        record["values"] = value.tolist()
    return record


def _input_name(name: str, event: Answered) -> str:
    """The signature's name of an input a request left unnamed (TF Serving's one-input form)."""
    if name or len(event.inputs) != 1:
        return name
    return next(iter(event.inputs))


def _outputs_record(outputs: dict[str, np.ndarray]) -> dict[str, Any]:
    record: dict[str, Any] = {}
    for name, value in outputs.items():
        if value.ndim == 2 and value.shape[1] > TOP_K and np.issubdtype(value.dtype, np.floating):
            top = np.argsort(-value, axis=1)[:, :TOP_K]
            record[name] = {
                "top_k": top.tolist(),
                "scores": np.take_along_axis(value, top, axis=1).tolist(),
            }
        elif value.dtype != object:
            record[name] = value.tolist()
    return record


class PayloadLog:
    """A listener that samples answered requests into JSONL files (see the module docstring).

    Args:
        settings: folder, rates, seed, redaction, rotation and queue size.
        metrics: the metric catalogue.
    """

    def __init__(self, settings: EvaluationSettings, metrics: Metrics) -> None:
        assert settings.payload_log_dir is not None
        self._settings = settings
        self._metrics = metrics
        self._dir = Path(settings.payload_log_dir)
        self._samplers: dict[str, random.Random] = {}
        self._queue: queue.Queue[Any] = queue.Queue(settings.queue_size)
        self._file_number = 0
        self._thread = threading.Thread(target=self._write_loop, name="payload-log", daemon=True)
        self._thread.start()

    def sampled(self, model: str) -> bool:
        """Draw the sample: one seeded ``random.Random`` per model, one draw per request."""
        rate = self._settings.rate_for(model)
        if rate <= 0:
            return False
        sampler = self._samplers.get(model)
        if sampler is None:
            sampler = self._samplers[model] = random.Random(self._settings.payload_log_seed)
        return sampler.random() < rate

    def answered(self, event: Answered) -> None:
        """Sample and enqueue a record of ``event``; drop it (counted) if the queue is full."""
        if not self.sampled(event.model):
            return
        keep = self._settings.redact == "none"
        limit = self._settings.max_input_bytes
        timing = event.timing
        record = {
            "request_id": event.request_id,
            "model": event.model,
            "version": event.version,
            "signature": event.signature,
            "protocol": event.protocol,
            "time": event.received_at,
            "inputs": {
                _input_name(name, event): _input_record(value, keep, limit)
                for name, value in event.request.inputs.items()
            },
            "outputs": _outputs_record(event.outputs),
            "latency_s": {
                "preprocess": timing.preprocess_s,
                "queue": timing.queue_s,
                "inference": timing.inference_s,
                "postprocess": timing.postprocess_s,
                "total": timing.total_s,
            },
        }
        try:
            self._queue.put_nowait(record)
        except queue.Full:
            self._metrics.payload_log_dropped.labels(event.model, "queue_full").inc()

    def flush(self, timeout: float = 30.0) -> None:
        """Wait until every queued record is written or dropped (tests, shutdown)."""
        done = threading.Event()
        self._queue.put(done, timeout=timeout)
        done.wait(timeout)

    def close(self, timeout: float = 5.0) -> None:
        """Write what is queued, then stop the writer thread."""
        self._queue.put(_STOP, timeout=timeout)
        self._thread.join(timeout)

    def files(self) -> list[Path]:
        """The log files, oldest first."""
        return sorted(self._dir.glob("payload-*.jsonl"), key=_file_number)

    def _write_loop(self) -> None:
        while True:
            record = self._queue.get()
            if record is _STOP:
                return
            if isinstance(record, threading.Event):
                record.set()
                continue
            try:
                self._write(orjson.dumps(record) + b"\n")
                self._metrics.payload_log_records.labels(record["model"]).inc()
            except OSError as error:
                self._metrics.payload_log_disk_errors.inc()
                self._metrics.payload_log_dropped.labels(record["model"], "disk_error").inc()
                logger.warning("payload log write failed: %s", error)

    def _write(self, line: bytes) -> None:
        self._dir.mkdir(parents=True, exist_ok=True)
        if self._file_number == 0:
            existing = self.files()
            self._file_number = _file_number(existing[-1]) if existing else 1
        path = self._dir / f"payload-{self._file_number}.jsonl"
        if path.exists() and path.stat().st_size + len(line) > self._settings.max_file_bytes:
            self._file_number += 1
            path = self._dir / f"payload-{self._file_number}.jsonl"
            for old in self.files()[: -self._settings.max_files + 1 or None]:
                old.unlink(missing_ok=True)
        with path.open("ab") as handle:
            handle.write(line)


def _file_number(path: Path) -> int:
    return int(path.stem.rsplit("-", 1)[1])
