"""The model manager: every version's lifecycle, and routing requests to served versions.

It polls the source (``source.scan``), asks the policy what to do (``policy.plan``), loads
and warms new versions through the loader in a background thread, marks them AVAILABLE only
when warm, and only then retires the versions the policy drops (availability-preserving, as
TF Serving's ``AspiredVersionsManager``). A version that fails to load is reported FAILED and
never replaces a working one; it is retried only when its files change. A retired version is
unloaded once its in-flight requests have finished.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
import time
from collections.abc import Callable, Coroutine, Mapping
from concurrent.futures import Executor
from typing import Any

import grpc

from contract.errors import InvalidModelNameError
from contract.layout import check_model_name
from service.config import Settings
from service.errors import ModelNotFoundError, ModelUnavailableError, serving_error
from service.metrics import Metrics
from service.models import budget, memory, source, storage, traffic
from service.models.batching import Batcher
from service.models.loader import LoadedModel, load_version
from service.models.policy import Known, plan
from service.models.rollout import RolloutController
from service.models.versions import ServedVersion, VersionHold, VersionRecord, start_serving
from service.version_metrics import VersionMetrics
from service.views import ExperimentView, VersionState, VersionStatus

logger = logging.getLogger(__name__)


class ModelManager:
    """Owns every model version: lifecycle, routing and readiness.

    Args:
        settings: server settings (base path, policies, batching, devices).
        metrics: the metric catalogue.
        run_executor: threads that run model batches.
        load_executor: thread(s) that load and warm versions.
        device_for: maps a model name to a TensorFlow device string.
    """

    def __init__(
        self,
        settings: Settings,
        metrics: Metrics,
        run_executor: Executor,
        load_executor: Executor,
        device_for: Callable[[str], str],
    ) -> None:
        self._settings = settings
        self._metrics = metrics
        self._run_executor = run_executor
        self._load_executor = load_executor
        self._device_for = device_for
        self._base = storage.resolve_base(settings.model_base_path)
        self._records: dict[str, dict[int, VersionRecord]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._poll_task: asyncio.Task[None] | None = None
        self._roll_task: asyncio.Task[None] | None = None
        self._scan_lock = asyncio.Lock()
        self._load_seconds: dict[str, float] = {}
        self.initial_load_done = False
        self._closing = False
        self._rng = random.Random()
        self._splits: dict[str, dict[int, float]] = {}
        self.rollouts = RolloutController(settings, metrics, self._available)

    async def start(self) -> None:
        """Scan once, wait for the first loads, then keep polling in the background."""
        await self.poll_once()
        await self.wait_for_loads()
        self.initial_load_done = True
        self.rollouts.tick()
        if self._settings.poll_interval_s > 0:
            self._poll_task = asyncio.get_running_loop().create_task(self._poll_forever())
        self._roll_task = asyncio.get_running_loop().create_task(self.rollouts.run())

    async def close(self) -> None:
        """Stop polling and unload every version."""
        self._closing = True
        for task in (self._poll_task, self._roll_task):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        await self.wait_for_loads()
        for records in list(self._records.values()):
            for record in list(records.values()):
                await self._retire(record)

    async def wait_for_loads(self) -> None:
        """Wait until no load or retirement is in progress."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def _poll_forever(self) -> None:
        while True:
            await asyncio.sleep(self._settings.poll_interval_s)
            try:
                await self.poll_once()
            except Exception:
                logger.exception("model repository scan failed")

    async def poll_once(self) -> None:
        """Rescan the base path and start the loads and retirements the policy calls for."""
        async with self._scan_lock:
            if self._closing:
                return
            loop = asyncio.get_running_loop()
            folders = self._settings.model_paths
            on_disk = await (
                loop.run_in_executor(None, source.scan, self._base)
                if folders is None
                else loop.run_in_executor(None, source.scan_folders, dict(folders))
            )
            for model in set(on_disk) | set(self._records):
                self._apply(model, on_disk.get(model, {}))

    def _apply(self, model: str, on_disk: dict[int, str]) -> None:
        """Carry out the policy's plan for one model."""
        records = self._records.setdefault(model, {})
        known = {
            version: Known(
                record.state,
                files_changed=record.state is VersionState.FAILED
                and version in on_disk
                and storage.fingerprint(on_disk[version]) != record.fingerprint,
            )
            for version, record in records.items()
        }
        actions = plan(on_disk, known, self._settings.for_model(model))
        for version in actions.forget:
            self._set_state(records.pop(version), None)
        for version in actions.load:
            path = on_disk[version]
            footprint = memory.estimate_footprint(path, self._settings.memory_footprint_factor)
            record = VersionRecord(model, version, path, storage.fingerprint(path), footprint)
            records[version] = record
            if not self._refused_by_budget(record):
                self._spawn(self._load(record))
        for version in actions.retire:
            self._spawn(self._retire(records[version]))
        if not records and not on_disk:
            del self._records[model]

    def _refused_by_budget(self, record: VersionRecord) -> bool:
        """Refuse a version the memory budget cannot hold: FAILED, RESOURCE_EXHAUSTED."""
        held = [r for rs in self._records.values() for r in rs.values() if r.holds_memory]
        why = budget.refusal(
            record.label,
            record.footprint,
            sum(r.footprint for r in held if r.model == record.model and r is not record),
            sum(r.footprint for r in held if r is not record),
            self._settings.for_model(record.model).memory_budget_bytes,
            self._settings.memory_budget_bytes,
        )
        if why is None:
            return False
        record.error = f"RESOURCE_EXHAUSTED: {why}"
        record.error_code = grpc.StatusCode.RESOURCE_EXHAUSTED.value[0]
        self._set_state(record, VersionState.FAILED)
        self._metrics.model_loads_refused.labels(record.model, "memory_budget").inc()
        logger.error("refused to load %s: %s", record.label, why)
        return True

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("model lifecycle task failed", exc_info=task.exception())
        else:  # a finished load may let an older version retire
            asyncio.get_running_loop().create_task(self._settle())

    async def _settle(self) -> None:
        with contextlib.suppress(Exception):
            await self.poll_once()

    def _set_state(self, record: VersionRecord, state: VersionState | None) -> None:
        if state is not None:
            record.state = state
        self._metrics.set_model_state(record.model, record.version, state and state.value)

    def _load_blocking(self, record: VersionRecord) -> LoadedModel:
        batching = self._settings.batching_for(record.model)
        sizes = [1, batching.max_batch_size, *(batching.allowed_batch_sizes or [])]
        return load_version(
            record.path,
            self._device_for(record.model),
            sizes,
            self._settings.runtime_for(record.model),
            self._settings.runtime_threads,
        )

    async def _load(self, record: VersionRecord) -> None:
        self._set_state(record, VersionState.LOADING)
        self._metrics.model_memory.labels(record.model, str(record.version)).set(record.footprint)
        started = time.monotonic()
        logger.info("loading %s from %s", record.label, record.path)
        try:
            loaded = await asyncio.get_running_loop().run_in_executor(
                self._load_executor, self._load_blocking, record
            )
        except Exception as exc:
            record.error = f"{type(exc).__name__}: {exc}"
            self._set_state(record, VersionState.FAILED)
            self._forget_footprint(record)
            self._metrics.model_load_failures.labels(record.model).inc()
            logger.error("failed to load %s: %s", record.label, record.error)
            return
        metrics = VersionMetrics(self._metrics, record.model, record.version)
        batching = self._settings.batching_for(record.model)
        batcher = Batcher(
            loaded.runtime.predict, batching, self._run_executor, metrics, record.label
        )
        served = start_serving(record.model, record.version, loaded, batcher, metrics)
        record.served = served
        self._load_seconds[record.model] = time.monotonic() - started
        self._metrics.model_load_duration.labels(record.model).observe(time.monotonic() - started)
        self._set_state(record, VersionState.AVAILABLE)
        self._metrics.set_model_runtime(record.model, record.version, loaded.runtime_name)
        memory.after_load()
        elapsed = time.monotonic() - started
        logger.info("%s is AVAILABLE on %s (%.1fs)", record.label, loaded.runtime_name, elapsed)

    async def _retire(self, record: VersionRecord) -> None:
        if record.state is VersionState.UNLOADING:
            return
        self._set_state(record, VersionState.UNLOADING)
        served, record.served = record.served, None
        if served is not None:
            logger.info("unloading %s after %d in-flight request(s)", record.label, served.inflight)
            await served.idle.wait()
            await served.batcher.close()
            served.runtime.close()
        self._set_state(record, None)
        self._forget_footprint(record)
        self._metrics.set_model_runtime(record.model, record.version, None)
        record.state = VersionState.END
        records = self._records.get(record.model, {})
        if records.get(record.version) is record:
            del records[record.version]  # the model stays known until its folder goes
        memory.after_unload()

    def _forget_footprint(self, record: VersionRecord) -> None:
        with contextlib.suppress(KeyError):
            self._metrics.model_memory.remove(record.model, str(record.version))

    def _retry_after(self, model: str, records: list[VersionRecord]) -> int | None:
        """Seconds until a version of ``model`` is expected back; None if none is coming."""
        coming = (VersionState.START, VersionState.LOADING, VersionState.UNLOADING)
        if records and not any(record.state in coming for record in records):
            return None
        return max(1, math.ceil(self._load_seconds.get(model, 1.0)))

    # routing and views
    def model_names(self) -> list[str]:
        return sorted(self._records)

    def serves(self, model: str) -> bool:
        """Whether the repository holds ``model`` (in any state)."""
        return model in self._records

    def _records_of(self, model: str) -> list[VersionRecord]:
        """Every known version of a model, newest first (NotFound when there is none)."""
        records = self._records.get(model)
        if records is None:  # a known model's name is valid: the source checked it
            try:
                check_model_name(model)
            except InvalidModelNameError as exc:
                raise serving_error(exc) from None
            raise ModelNotFoundError(
                # Triton's wording, which its example clients match on
                f"Request for unknown model: {model!r} is not found; available models: "
                f"{self.model_names()}"
            )
        return sorted(records.values(), key=lambda record: -record.version)

    def statuses(self, model: str) -> list[VersionStatus]:
        """The state of every known version of a model, newest first."""
        return [record.status() for record in self._records_of(model)]

    def resolve_label(self, model: str, label: str) -> int:
        """A version label (e.g. 'stable') of a model → its version number."""
        labels = self._settings.for_model(model).version_labels
        if label not in labels:
            raise ModelNotFoundError(
                f"model {model!r} has no version label {label[:64]!r}; labels: {sorted(labels)}"
            )
        return labels[label]

    def route(self, model: str, metadata: Mapping[str, str]) -> int | None:
        """The version the model's traffic split picks for a request (None: the latest)."""
        settings = self._settings.for_model(model)
        if not settings.traffic and settings.rollout is None:
            self._publish_split(model, {})
            return None
        weights = self.rollouts.weights(model) or traffic.arm_weights(
            settings.traffic, settings.version_labels
        )
        self._publish_split(model, weights)
        available = self._available(model)
        header = traffic.sticky_header(settings.sticky_key)
        key = metadata.get(header) if header is not None else None
        return traffic.pick(weights, available, key, self._rng)

    def experiment_view(self, model: str) -> ExperimentView:
        """How the model's unversioned requests are shared (``traffic.experiment_view``)."""
        self._records_of(model)  # NotFound for a model the repository does not hold
        latest = max(self._available(model), default=None)
        rollout = self.rollouts.view(model)
        return traffic.experiment_view(model, self._settings.for_model(model), rollout, latest)

    def _available(self, model: str) -> list[int]:
        return [
            v for v, r in self._records.get(model, {}).items() if r.state is VersionState.AVAILABLE
        ]

    def _publish_split(self, model: str, weights: dict[int, float]) -> None:
        """Export the split's shares as ``primer_traffic_weight`` when it changes."""
        if self._splits.get(model, {}) == weights:
            return
        for version in self._splits.pop(model, {}):
            self._metrics.traffic_weight.remove(model, str(version))
        total = sum(weights.values())
        for version, weight in weights.items():
            self._metrics.traffic_weight.labels(model, str(version)).set(weight / total)
        if weights:
            self._splits[model] = dict(weights)
            logger.info("traffic split of %s: %s", model, weights)

    def resolve(self, model: str, version: int | None = None) -> ServedVersion:
        """The AVAILABLE version to serve: the given one, else the highest available."""
        records = self._records_of(model)
        if version is None:
            for record in records:
                if record.served is not None and record.state is VersionState.AVAILABLE:
                    return record.served
            states = ", ".join(f"{r.version}: {r.state.name}" for r in records) or (
                "between versions: the old one is unloaded before the new one loads"
            )
            raise ModelUnavailableError(
                f"model {model!r} has no AVAILABLE version ({states})",
                self._retry_after(model, records),
            )
        for record in records:
            if record.version == version:
                if record.served is not None and record.state is VersionState.AVAILABLE:
                    return record.served
                detail = f": {record.error}" if record.error else ""
                raise ModelUnavailableError(
                    f"model {model!r} version {version} is {record.state.name}{detail}"
                )
        raise ModelNotFoundError(
            f"model {model!r} has no version {version}; versions: "
            f"{[record.version for record in records]}"
        )

    def acquire(self, model: str, version: int | None = None) -> VersionHold:
        """Hold a version for one request (``with``) so it is not unloaded under it."""
        return VersionHold(self.resolve(model, version))

    def inflight(self) -> int:
        """Requests in flight over every served version."""
        return sum(
            r.served.inflight for m in self._records.values() for r in m.values() if r.served
        )

    def is_ready(self) -> bool:
        """Ready when the first scan has loaded and every model has an AVAILABLE version."""
        if not self.initial_load_done:
            return False
        return all(
            any(record.state is VersionState.AVAILABLE for record in records.values())
            for records in self._records.values()
        )
