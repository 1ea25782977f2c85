"""The sampled payload log: JSONL records of answered requests, built and written off the loop.

``answered`` runs on the event loop: it draws the sample (one seeded generator per model) and
hands the event itself to the ``payload_log`` lane of the side-work executor: a reference,
no copy, no JSON, no digest. On the side-work thread, while the server is not busy
(``service.inference.side_work``), records are built and serialized in bulk and handed as one
chunk of lines to the log's own writer thread, which only appends (the file stays open),
rotates past ``max_file_bytes`` and keeps ``max_files``; a stuck disk stalls that thread
alone. A full lane, or ``queue_size`` records already waiting for the disk, drops the record
(``reason="queue_full"``); a disk that refuses a write (full, unwritable) drops its records
(``reason="disk_error"``). A request is never slowed or failed by its log record.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import logging
import os
import queue
import random
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import orjson

from service.evaluation_settings import EvaluationSettings
from service.inference.events import Answered
from service.inference.side_work import Lane, SideWork
from service.metrics import Metrics

logger = logging.getLogger(__name__)
TOP_K = 5
KIND = "payload_log"
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
        record["values"] = _json_array(value)
    return record


def _json_array(value: np.ndarray) -> np.ndarray | list[Any]:
    """An array orjson writes itself (numbers, C order: no Python floats), else a list."""
    if value.dtype.kind in "biuf":
        return np.ascontiguousarray(value)
    return value.tolist()


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
                "top_k": _json_array(top),
                "scores": _json_array(np.take_along_axis(value, top, axis=1)),
            }
        elif value.dtype != object:
            record[name] = _json_array(value)
    return record


def _held(event: Answered) -> int:
    """The bytes a waiting event keeps alive for its record (inputs as sent, outputs)."""
    held = sum(a.nbytes for a in event.outputs.values())
    for value in event.request.inputs.values():
        if value.dtype == object:
            held += sum(len(item) for item in value.ravel() if isinstance(item, bytes))
        else:
            held += value.nbytes
    return held


def record_of(event: Answered, keep: bool, limit: int) -> dict[str, Any]:
    """The log record of one answered request (inputs kept when ``keep`` and small)."""
    timing = event.timing
    return {
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


@dataclass
class _Chunk:
    """Serialized records for the writer: their lines and their models (for the counters)."""

    lines: list[bytes]
    models: list[str]


class PayloadLog:
    """A listener that samples answered requests into JSONL files (see the module docstring).

    Args:
        settings: folder, rates, seed, redaction, rotation, queue size and load threshold.
        metrics: the metric catalogue.
        side_work: the executor that builds the records.
    """

    def __init__(self, settings: EvaluationSettings, metrics: Metrics, side_work: SideWork):
        assert settings.payload_log_dir is not None
        self._settings = settings
        self._metrics = metrics
        self._side_work = side_work
        self._dir = Path(settings.payload_log_dir)
        self._samplers: dict[str, random.Random] = {}
        self._seed = settings.payload_log_seed
        self._lane: Lane[Answered] = side_work.add(
            Lane(KIND, settings.queue_size, self._serialize, settings.max_inflight, weigh=_held)
        )
        self._chunks: queue.Queue[Any] = queue.Queue()
        # records handed to the writer and done by it (written or lost), each counter with
        # one writer thread: at most ``queue_size`` wait for the disk
        self._handed = 0
        self._written = 0
        self._file: BinaryIO | None = None
        self._file_number = 0
        self._file_size = 0
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

    def settings_changed(self) -> None:
        """Apply reloaded settings: a new seed starts every model's sampler over (rates,
        redaction and rotation are read per record)."""
        if self._settings.payload_log_seed != self._seed:
            self._seed = self._settings.payload_log_seed
            self._samplers = {}

    def answered(self, event: Answered) -> None:
        """Sample, and queue ``event`` for the side-work thread (dropped, counted, if full)."""
        if self.sampled(event.model) and not self._lane.offer(event):
            self._metrics.payload_log_dropped.labels(event.model, "queue_full").inc()

    def flush(self, timeout: float = 30.0) -> None:
        """Wait until every sampled record is written or dropped (tests, shutdown); not on
        the event loop."""
        self._side_work.flush(timeout)
        done = threading.Event()
        self._chunks.put(done, timeout=timeout)
        done.wait(timeout)

    def close(self, timeout: float = 5.0) -> None:
        """Write what the writer holds, then stop its thread."""
        self._chunks.put(_STOP, timeout=timeout)
        self._thread.join(timeout)

    def files(self) -> list[Path]:
        """The log files, oldest first."""
        return sorted(self._dir.glob("payload-*.jsonl"), key=_file_number)

    def _serialize(self, events: list[Answered]) -> None:
        """Side-work thread: build and serialize a bulk of records, hand them to the writer."""
        keep = self._settings.redact == "none"
        limit = self._settings.max_input_bytes
        room = self._settings.queue_size - (self._handed - self._written)
        kept, late = events[: max(room, 0)], events[max(room, 0) :]
        for event in late:  # the disk is slower than the traffic: drop, count
            self._metrics.payload_log_dropped.labels(event.model, "queue_full").inc()
        if kept:
            lines = [
                orjson.dumps(record_of(event, keep, limit), option=orjson.OPT_SERIALIZE_NUMPY)
                + b"\n"
                for event in kept
            ]
            self._handed += len(lines)
            self._chunks.put(_Chunk(lines, [event.model for event in kept]))

    def _write_loop(self) -> None:
        while True:
            chunk = self._chunks.get()
            if chunk is _STOP:
                if self._file is not None:
                    self._file.close()
                return
            if isinstance(chunk, threading.Event):
                chunk.set()
                continue
            written = 0
            try:
                for line in chunk.lines:
                    self._write(line)
                    written += 1
            except OSError as error:
                lost = chunk.models[written:]
                self._metrics.payload_log_disk_errors.inc(len(lost))
                for model in lost:
                    self._metrics.payload_log_dropped.labels(model, "disk_error").inc()
                logger.warning("payload log write failed (%d records lost): %s", len(lost), error)
                self._close_file()
            for model in chunk.models[:written]:
                self._metrics.payload_log_records.labels(model).inc()
            self._written += len(chunk.lines)

    def _write(self, line: bytes) -> None:
        if (
            self._file is not None
            and self._file_size
            and (self._file_size + len(line) > self._settings.max_file_bytes)
        ):
            self._close_file()
            self._file_number += 1
            for old in self.files()[: -self._settings.max_files + 1 or None]:
                old.unlink(missing_ok=True)
        if self._file is None:
            self._open()
        assert self._file is not None
        self._file.write(line)  # unbuffered: a refused write raises here, for this record
        self._file_size += len(line)

    def _open(self) -> None:
        self._dir.mkdir(parents=True, exist_ok=True)
        if self._file_number == 0:
            existing = self.files()
            self._file_number = _file_number(existing[-1]) if existing else 1
        path = self._dir / f"payload-{self._file_number}.jsonl"
        self._file = path.open("ab", buffering=0)
        self._file_size = os.fstat(self._file.fileno()).st_size
        if self._file_size + 1 > self._settings.max_file_bytes:  # full already: next file
            self._close_file()
            self._file_number += 1
            self._open()

    def _close_file(self) -> None:
        if self._file is not None:
            with contextlib.suppress(OSError):
                self._file.close()
            self._file = None


def _file_number(path: Path) -> int:
    return int(path.stem.rsplit("-", 1)[1])
