"""The model repository manager: which versions exist, which should be served, their states.

Scans ``<base>/<model>/<version>/`` (TF Serving's layout), applies each model's version
policy, loads and warms new versions in a background thread, marks them AVAILABLE only when
warm, and only then retires the versions the policy drops (availability-preserving, as TF
Serving's ``AspiredVersionsManager``). A version that fails to load is reported FAILED and
never replaces a working one; it is retried only when its files change. A version whose
folder disappears is unloaded once its in-flight requests have finished.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import gc
import logging
import re
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field

from service import storage
from service.batching import Batcher
from service.config import ModelSettings, Settings
from service.errors import ModelNotFoundError, ModelUnavailableError
from service.metrics import Metrics, VersionMetrics
from service.model_card import MODEL_NAME, ModelCard, read_model_card
from service.runtime import ModelRuntime
from service.warmup import warm_up

logger = logging.getLogger(__name__)

VERSION_DIR = re.compile(r"[0-9]{1,18}")


class VersionState(enum.Enum):
    """Lifecycle of a version (TF Serving's states, plus FAILED for a load that failed)."""

    START = "START"
    LOADING = "LOADING"
    AVAILABLE = "AVAILABLE"
    UNLOADING = "UNLOADING"
    END = "END"
    FAILED = "FAILED"


@dataclass
class ModelVersion:
    """One version of a model and everything loaded for it."""

    model: str
    version: int
    path: str
    fingerprint: tuple[int, ...]
    state: VersionState = VersionState.START
    error: str = ""
    runtime: ModelRuntime | None = None
    card: ModelCard | None = None
    batcher: Batcher | None = None
    metrics: VersionMetrics | None = None
    inflight: int = 0
    idle: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self.idle.set()  # no request in flight yet

    @property
    def label(self) -> str:
        return f"{self.model}:{self.version}"


def validate_model_name(name: str) -> str:
    """Refuse names that are not a plain folder name (no paths, no control characters)."""
    if not MODEL_NAME.fullmatch(name):
        shown = name[:64].encode("unicode_escape").decode("ascii")
        raise ModelNotFoundError(
            f"model name {shown!r} is not valid; expected letters, digits, '_', '.', '-' "
            "(at most 128, not starting with a symbol)"
        )
    return name


def parse_version(text: str) -> int:
    """A version from a URL or message: a positive integer of at most 18 digits."""
    if not VERSION_DIR.fullmatch(text) or int(text) <= 0:
        shown = text[:32].encode("unicode_escape").decode("ascii")
        raise ModelNotFoundError(f"version {shown!r} is not valid; expected a positive integer")
    return int(text)


def select_versions(available: list[int], policy: ModelSettings) -> set[int]:
    """The versions a model's policy asks for, among those on disk and loadable."""
    if policy.version_policy == "all":
        return set(available)
    if policy.version_policy == "specific":
        return set(available) & set(policy.versions)
    return set(sorted(available)[-policy.latest :])


class ModelRepository:
    """Owns every model version: discovery, loading, warm-up, routing and retirement.

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
        self._versions: dict[str, dict[int, ModelVersion]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._poll_task: asyncio.Task[None] | None = None
        self._scan_lock = asyncio.Lock()
        self.initial_load_done = False
        self._closing = False

    # ----- lifecycle -------------------------------------------------------------------
    async def start(self) -> None:
        """Scan once, wait for the first loads, then keep polling in the background."""
        await self.poll_once()
        await self.wait_for_loads()
        self.initial_load_done = True
        if self._settings.poll_interval_s > 0:
            self._poll_task = asyncio.get_running_loop().create_task(self._poll_forever())

    async def close(self) -> None:
        """Stop polling and unload every version."""
        self._closing = True
        if self._poll_task is not None:
            self._poll_task.cancel()
            await asyncio.gather(self._poll_task, return_exceptions=True)
        await self.wait_for_loads()
        for versions in list(self._versions.values()):
            for mv in list(versions.values()):
                await self._retire(mv)

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

    # ----- discovery and reconciliation -------------------------------------------------
    def _scan(self) -> dict[str, dict[int, str]]:
        """Model name → {version: path} on disk (blocking; run in a thread)."""
        found: dict[str, dict[int, str]] = {}
        if not storage.exists(self._base):
            logger.error("model base path %s does not exist", self._base)
            return found
        for name in storage.list_dirs(self._base):
            if not MODEL_NAME.fullmatch(name):
                continue
            versions: dict[int, str] = {}
            model_dir = storage.join(self._base, name)
            for version_name in storage.list_dirs(model_dir):
                if not VERSION_DIR.fullmatch(version_name) or int(version_name) <= 0:
                    continue
                path = storage.inside(self._base, storage.join(model_dir, version_name))
                if path is None:
                    logger.warning(
                        "ignoring %s/%s: it resolves outside the model base path",
                        name,
                        version_name,
                    )
                elif storage.exists(storage.join(path, "saved_model.pb")):
                    versions[int(version_name)] = path
            if versions:
                found[name] = versions
        return found

    async def poll_once(self) -> None:
        """Rescan the base path and start the loads and retirements it calls for."""
        async with self._scan_lock:
            if self._closing:
                return
            on_disk = await asyncio.get_running_loop().run_in_executor(None, self._scan)
            for model in set(on_disk) | set(self._versions):
                self._reconcile(model, on_disk.get(model, {}))

    def _reconcile(self, model: str, on_disk: dict[int, str]) -> None:
        known = self._versions.setdefault(model, {})
        for version, path in on_disk.items():
            mv = known.get(version)
            if mv is not None and mv.state is VersionState.FAILED:
                fingerprint = storage.fingerprint(path)
                if fingerprint != mv.fingerprint:  # files changed: try again
                    del known[version]
        loadable = [
            v for v in on_disk if v not in known or known[v].state is not VersionState.FAILED
        ]
        aspired = select_versions(loadable, self._settings.for_model(model))
        for version in aspired:
            if version not in known:
                path = on_disk[version]
                mv = ModelVersion(model, version, path, storage.fingerprint(path))
                known[version] = mv
                self._spawn(self._load(mv))
        states = [known[v].state for v in aspired]
        settled = all(s in (VersionState.AVAILABLE, VersionState.FAILED) for s in states)
        any_available = VersionState.AVAILABLE in states
        for version, mv in list(known.items()):
            if version in aspired or mv.state is VersionState.UNLOADING:
                continue
            gone = version not in on_disk
            if mv.state is VersionState.FAILED and gone:
                self._set_state(mv, None)
                del known[version]
            elif mv.state is VersionState.AVAILABLE and (gone or (settled and any_available)):
                self._spawn(self._retire(mv))
        if not known:
            del self._versions[model]

    def _spawn(self, coroutine: object) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)  # type: ignore[arg-type]
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("model lifecycle task failed", exc_info=task.exception())
        else:
            # a finished load may let an older version retire
            asyncio.get_running_loop().create_task(self._settle())

    async def _settle(self) -> None:
        with contextlib.suppress(Exception):
            await self.poll_once()

    # ----- load and retire --------------------------------------------------------------
    def _set_state(self, mv: ModelVersion, state: VersionState | None) -> None:
        if state is not None:
            mv.state = state
        self._metrics.set_model_state(mv.model, mv.version, state and state.value)

    def _load_blocking(self, mv: ModelVersion) -> tuple[ModelRuntime, ModelCard | None]:
        card = read_model_card(mv.path)
        runtime = ModelRuntime(mv.path, device=self._device_for(mv.model))
        batching = self._settings.batching_for(mv.model)
        sizes = [1, batching.max_batch_size, *(batching.allowed_batch_sizes or [])]
        warm_up(runtime, mv.path, sizes)
        return runtime, card

    async def _load(self, mv: ModelVersion) -> None:
        self._set_state(mv, VersionState.LOADING)
        started = time.monotonic()
        logger.info("loading %s from %s", mv.label, mv.path)
        try:
            runtime, card = await asyncio.get_running_loop().run_in_executor(
                self._load_executor, self._load_blocking, mv
            )
        except Exception as exc:
            mv.error = f"{type(exc).__name__}: {exc}"
            self._set_state(mv, VersionState.FAILED)
            self._metrics.model_load_failures.labels(mv.model).inc()
            logger.error("failed to load %s: %s", mv.label, mv.error)
            return
        mv.runtime, mv.card = runtime, card
        mv.metrics = VersionMetrics(self._metrics, mv.model, mv.version)
        mv.batcher = Batcher(
            runtime.predict,
            self._settings.batching_for(mv.model),
            self._run_executor,
            mv.metrics,
            mv.label,
        )
        mv.metrics.track(
            queue_depth=lambda: mv.batcher.queue_depth if mv.batcher else 0,
            inflight=lambda: mv.inflight,
            queue_capacity=mv.batcher.queue_capacity,
        )
        mv.batcher.start()
        self._metrics.model_load_duration.labels(mv.model).observe(time.monotonic() - started)
        self._set_state(mv, VersionState.AVAILABLE)
        gc.collect()
        gc.freeze()  # loaded graphs are long-lived: keep the collector from rescanning them
        logger.info("%s is AVAILABLE (%.1fs)", mv.label, time.monotonic() - started)

    async def _retire(self, mv: ModelVersion) -> None:
        if mv.state is VersionState.UNLOADING:
            return
        self._set_state(mv, VersionState.UNLOADING)
        logger.info("unloading %s after %d in-flight request(s)", mv.label, mv.inflight)
        await mv.idle.wait()
        if mv.batcher is not None:
            await mv.batcher.close()
        if mv.runtime is not None:
            mv.runtime.close()
        mv.runtime = mv.batcher = None
        self._set_state(mv, None)
        mv.state = VersionState.END
        versions = self._versions.get(mv.model, {})
        if versions.get(mv.version) is mv:
            del versions[mv.version]
            if not versions:
                self._versions.pop(mv.model, None)
        gc.unfreeze()
        gc.collect()
        gc.freeze()

    # ----- routing ----------------------------------------------------------------------
    def model_names(self) -> list[str]:
        return sorted(self._versions)

    def versions(self, model: str) -> list[ModelVersion]:
        """Every known version of a model, newest first (NotFound when there is none)."""
        validate_model_name(model)
        versions = self._versions.get(model)
        if not versions:
            raise ModelNotFoundError(
                f"model {model!r} not found; available models: {self.model_names()}"
            )
        return sorted(versions.values(), key=lambda mv: -mv.version)

    def resolve_label(self, model: str, label: str) -> int:
        """A version label (e.g. 'stable') of a model → its version number."""
        labels = self._settings.for_model(model).version_labels
        if label not in labels:
            raise ModelNotFoundError(
                f"model {model!r} has no version label {label[:64]!r}; labels: {sorted(labels)}"
            )
        return labels[label]

    def resolve(self, model: str, version: int | None = None) -> ModelVersion:
        """The AVAILABLE version to serve: the given one, else the highest available."""
        versions = self.versions(model)
        if version is None:
            for mv in versions:
                if mv.state is VersionState.AVAILABLE:
                    return mv
            states = ", ".join(f"{mv.version}: {mv.state.name}" for mv in versions)
            raise ModelUnavailableError(f"model {model!r} has no AVAILABLE version ({states})")
        for mv in versions:
            if mv.version == version:
                if mv.state is VersionState.AVAILABLE:
                    return mv
                detail = f": {mv.error}" if mv.error else ""
                raise ModelUnavailableError(
                    f"model {model!r} version {version} is {mv.state.name}{detail}"
                )
        raise ModelNotFoundError(
            f"model {model!r} has no version {version}; versions: {[mv.version for mv in versions]}"
        )

    @contextlib.asynccontextmanager
    async def acquire(self, model: str, version: int | None = None) -> AsyncIterator[ModelVersion]:
        """Hold a version for one request so it is not unloaded under it."""
        mv = self.resolve(model, version)
        mv.inflight += 1
        mv.idle.clear()
        try:
            yield mv
        finally:
            mv.inflight -= 1
            if mv.inflight == 0:
                mv.idle.set()

    def is_ready(self) -> bool:
        """Ready when the first scan has loaded and every model has an AVAILABLE version."""
        if not self.initial_load_done:
            return False
        return all(
            any(mv.state is VersionState.AVAILABLE for mv in versions.values())
            for versions in self._versions.values()
        )
