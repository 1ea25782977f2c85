"""Shadow traffic: mirror answered requests to another version and compare, off the hot path.

``ShadowMirror`` is an answer listener. For a model with ``shadow: {version, fraction}`` it
takes that fraction of the answered requests (after the primary's response is encoded) and
hands them to the ``shadow`` lane of the side-work executor (``service.inference.side_work``)
without waiting. That thread takes mirrors in bulk only while fewer than the model's
``max_inflight`` client requests are in flight, submits the bulk to the shadow version at
once through the core as protocol ``shadow`` (the shadow's batcher batches them; its own
request metrics count them) and compares each with the primary's outputs: top-1 agreement
and mean absolute difference per row, per (model, primary, shadow) pair. While the server is
busier, mirrors wait; a full lane sheds new ones (``outcome="dropped"``). So shadow work is
the first shed under load and never competes with a busy primary. The client never sees a
shadow result or error.

During a rollout with a ``min_agreement`` gate, every answer of the candidate is mirrored to
the baseline instead (pair: model, candidate, baseline): the gate's live comparison, which
runs up to ``LIVE_COMPARISON_INFLIGHT`` requests in flight.
"""

from __future__ import annotations

import asyncio
import logging
import random
from dataclasses import dataclass

import numpy as np

from service.config import Settings
from service.inference.core import InferenceCore
from service.inference.events import Answered
from service.inference.request import InferenceRequest
from service.inference.side_work import Lane, SideWork
from service.metrics import Metrics

logger = logging.getLogger(__name__)
PROTOCOL = "shadow"
"""The ``protocol`` label of mirrored requests (their answers are not mirrored again)."""
QUEUE_SIZE = 64
"""Mirrors waiting at most; beyond, new ones are dropped (``outcome="dropped"``)."""
BULK = 32
"""Mirrors submitted together (one batch's worth for the shadow's batcher)."""
LIVE_COMPARISON_INFLIGHT = 64
"""In-flight client requests above which a rollout's live comparison waits."""


def compare(primary: np.ndarray, shadow: np.ndarray) -> tuple[int, int, float]:
    """Rows, rows with the same top-1 index, and the sum over rows of the mean abs difference."""
    rows = primary.shape[0] if primary.ndim else 1
    left = np.asarray(primary, np.float64).reshape(rows, -1)
    right = np.asarray(shadow, np.float64).reshape(rows, -1)
    if left.shape != right.shape:
        raise ValueError(f"the shadow answered shape {shadow.shape}, the primary {primary.shape}")
    agree = int(np.sum(left.argmax(axis=1) == right.argmax(axis=1)))
    return rows, agree, float(np.abs(left - right).mean(axis=1).sum())


@dataclass(frozen=True)
class _Mirror:
    """One answer to mirror: to which version, and below which load it may run."""

    event: Answered
    version: int
    max_inflight: int


def _held(mirror: _Mirror) -> int:
    event = mirror.event
    return sum(a.nbytes for a in (*event.inputs.values(), *event.outputs.values()))


class ShadowMirror:
    """Mirrors a fraction of each model's answers to its shadow version (see module doc).

    Args:
        core: runs the mirrored requests.
        settings: the running settings (per-model ``shadow``; reloads apply at once).
        metrics: the metric catalogue.
        side_work: the executor that runs the mirrors.
    """

    def __init__(
        self, core: InferenceCore, settings: Settings, metrics: Metrics, side_work: SideWork
    ) -> None:
        self._core = core
        self._settings = settings
        self._metrics = metrics
        self._side_work = side_work
        self._lane: Lane[_Mirror] = side_work.add(
            Lane(
                "shadow",
                QUEUE_SIZE,
                self._run_bulk,
                lambda mirror: mirror.max_inflight,
                weigh=_held,
                bulk=BULK,
            )
        )
        self._loop: asyncio.AbstractEventLoop | None = None
        self._rng = random.Random()

    def answered(self, event: Answered) -> None:
        """Queue a mirror of ``event`` when its model has a shadow (never waits)."""
        if event.protocol == PROTOCOL:
            return
        settings = self._settings.for_model(event.model)
        target, fraction, limit = None, 1.0, LIVE_COMPARISON_INFLIGHT
        rollout = settings.rollout
        if rollout is not None and rollout.gates.min_agreement is not None:
            if event.version == rollout.candidate:  # the rollout's live comparison
                target = rollout.baseline
        elif settings.shadow is not None and settings.shadow.version != event.version:
            target, fraction = settings.shadow.version, settings.shadow.fraction
            limit = settings.shadow.max_inflight
        if target is None or (fraction < 1 and self._rng.random() >= fraction):
            return
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        if not self._lane.offer(_Mirror(event, target, limit)):
            self._count(event, target, "dropped")

    async def drain(self) -> None:
        """Wait until every queued mirror has run (for tests and shutdown)."""
        await self._side_work.drain()

    def _run_bulk(self, mirrors: list[_Mirror]) -> None:
        """Side-work thread: run a bulk of mirrors on the loop at once, compare here."""
        assert self._loop is not None
        running = asyncio.run_coroutine_threadsafe(self._infer_all(mirrors), self._loop)
        results = running.result(self._settings.request_timeout_s + 5)
        for mirror, result in zip(mirrors, results, strict=True):
            event, version = mirror.event, mirror.version
            try:
                if isinstance(result, BaseException):
                    raise result
                name = sorted(event.outputs)[0]
                rows, agree, abs_diff = compare(event.outputs[name], result[name])
            except Exception as exc:  # counted and logged; the client never sees it
                self._count(event, version, "error")
                logger.debug("shadow %s:%s failed: %s", event.model, version, exc)
                continue
            self._count(event, version, "ok")
            self._metrics.record_shadow(
                event.model, str(event.version), str(version), rows, agree, abs_diff
            )

    async def _infer_all(self, mirrors: list[_Mirror]) -> list[object]:
        return await asyncio.gather(*(self._infer(m) for m in mirrors), return_exceptions=True)

    async def _infer(self, mirror: _Mirror) -> dict[str, np.ndarray]:
        event = mirror.event
        request = InferenceRequest(
            event.model,
            dict(event.inputs),
            version=mirror.version,
            signature=event.signature,
            output_filter=list(event.outputs),
            protocol=PROTOCOL,
        )
        with self._core.scope(PROTOCOL, event.model) as scope:
            outputs, _ = await scope.infer(request, lambda result: result.outputs)
        return outputs

    def _count(self, event: Answered, version: int, outcome: str) -> None:
        self._metrics.shadow_requests.labels(
            event.model, str(event.version), str(version), outcome
        ).inc()
