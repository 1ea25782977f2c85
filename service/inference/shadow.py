"""Shadow traffic: mirror answered requests to another version and compare, off the hot path.

``ShadowMirror`` is an answer listener. For a model with ``shadow: {version, fraction}`` it
takes that fraction of the answered requests (after the primary's response is encoded) and
puts them on a bounded queue without waiting; when the queue is full the mirror is dropped
and counted, and a queued mirror is dropped too while ``max_inflight`` client requests or
more are in flight, so shadow work is shed first and does not compete with a busy primary.
One worker task runs each mirror through the core as protocol ``shadow`` (the shadow's own
request metrics) and compares it with the primary's outputs: top-1 agreement and mean
absolute difference per row, per (model, primary, shadow) pair. The client never sees a
shadow result or error.

During a rollout with a ``min_agreement`` gate, every answer of the candidate is mirrored to
the baseline instead (pair: model, candidate, baseline): the gate's live comparison.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random

import numpy as np

from service.config import Settings
from service.inference.core import InferenceCore
from service.inference.events import Answered
from service.inference.request import InferenceRequest
from service.metrics import Metrics

logger = logging.getLogger(__name__)
PROTOCOL = "shadow"
"""The ``protocol`` label of mirrored requests (their answers are not mirrored again)."""
QUEUE_SIZE = 64
LIVE_COMPARISON_INFLIGHT = 64
"""In-flight client requests above which a rollout's live comparison is shed."""
"""Mirrors waiting at most; beyond, new ones are dropped (``outcome="dropped"``)."""


def compare(primary: np.ndarray, shadow: np.ndarray) -> tuple[int, int, float]:
    """Rows, rows with the same top-1 index, and the sum over rows of the mean abs difference."""
    rows = primary.shape[0] if primary.ndim else 1
    left = np.asarray(primary, np.float64).reshape(rows, -1)
    right = np.asarray(shadow, np.float64).reshape(rows, -1)
    if left.shape != right.shape:
        raise ValueError(f"the shadow answered shape {shadow.shape}, the primary {primary.shape}")
    agree = int(np.sum(left.argmax(axis=1) == right.argmax(axis=1)))
    return rows, agree, float(np.abs(left - right).mean(axis=1).sum())


class ShadowMirror:
    """Mirrors a fraction of each model's answers to its shadow version (see module doc).

    Args:
        core: runs the mirrored requests.
        settings: the running settings (per-model ``shadow``; reloads apply at once).
        metrics: the metric catalogue.
    """

    def __init__(self, core: InferenceCore, settings: Settings, metrics: Metrics) -> None:
        self._core = core
        self._settings = settings
        self._metrics = metrics
        self._queue: asyncio.Queue[tuple[Answered, int]] = asyncio.Queue(QUEUE_SIZE)
        self._worker: asyncio.Task[None] | None = None
        self._rng = random.Random()

    def answered(self, event: Answered) -> None:
        """Queue a mirror of ``event`` when its model has a shadow (never waits)."""
        if event.protocol == PROTOCOL:
            return
        settings = self._settings.for_model(event.model)
        target, fraction = None, 1.0
        rollout = settings.rollout
        if rollout is not None and rollout.gates.min_agreement is not None:
            if event.version == rollout.candidate:  # the rollout's live comparison
                target = rollout.baseline
        elif settings.shadow is not None and settings.shadow.version != event.version:
            target, fraction = settings.shadow.version, settings.shadow.fraction
        if target is None or (fraction < 1 and self._rng.random() >= fraction):
            return
        try:
            self._queue.put_nowait((event, target))
        except asyncio.QueueFull:
            self._count(event, target, "dropped")
            return
        if self._worker is None:
            self._worker = asyncio.get_running_loop().create_task(self._run())

    async def close(self) -> None:
        """Stop the worker (queued mirrors are dropped)."""
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker

    async def drain(self) -> None:
        """Wait until every queued mirror has run (for tests and shutdown)."""
        await self._queue.join()

    async def _run(self) -> None:
        while True:
            event, version = await self._queue.get()
            try:
                shadow = self._settings.for_model(event.model).shadow
                limit = shadow.max_inflight if shadow is not None else LIVE_COMPARISON_INFLIGHT
                if self._core.inflight() >= limit:  # clients first: shed the mirror
                    self._count(event, version, "dropped")
                    continue
                await self._mirror(event, version)
            finally:
                self._queue.task_done()

    async def _mirror(self, event: Answered, version: int) -> None:
        request = InferenceRequest(
            event.model,
            dict(event.inputs),
            version=version,
            signature=event.signature,
            output_filter=list(event.outputs),
            protocol=PROTOCOL,
        )
        try:
            with self._core.scope(PROTOCOL, event.model) as scope:
                outputs, _ = await scope.infer(request, lambda result: result.outputs)
            name = sorted(event.outputs)[0]
            rows, agree, abs_diff = compare(event.outputs[name], outputs[name])
        except Exception as exc:  # counted and logged; the client never sees it
            self._count(event, version, "error")
            logger.debug("shadow %s:%s failed: %s", event.model, version, exc)
            return
        self._count(event, version, "ok")
        self._metrics.record_shadow(
            event.model, str(event.version), str(version), rows, agree, abs_diff
        )

    def _count(self, event: Answered, version: int, outcome: str) -> None:
        self._metrics.shadow_requests.labels(
            event.model, str(event.version), str(version), outcome
        ).inc()
