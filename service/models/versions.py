"""The versions a manager holds: a record per known version, and a served (AVAILABLE) one."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from contract.model_card import ModelCard
from service.models.batching import Batcher
from service.models.loader import LoadedModel
from service.models.runtime import Runtime
from service.version_metrics import VersionMetrics
from service.views import ModelView, SignatureSpec, VersionState, VersionStatus


@dataclass(eq=False)
class ServedVersion:
    """An AVAILABLE version and everything loaded for it (no field is ever None)."""

    model: str
    version: int
    runtime: Runtime
    card: ModelCard | None
    batcher: Batcher
    metrics: VersionMetrics
    inflight: int = 0
    runtime_name: str = "tensorflow"
    idle: asyncio.Event = field(default_factory=asyncio.Event)
    _view: ModelView | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self.idle.set()  # no request in flight yet

    @property
    def label(self) -> str:
        return f"{self.model}:{self.version}"

    def signature(self, name: str | None) -> SignatureSpec:
        """The named signature (``serving_default`` when none is named)."""
        return self.view().signature(name)

    def view(self) -> ModelView:
        """What metadata shows of this version (built once: every request reads it)."""
        if self._view is None:
            self._view = ModelView(
                self.model,
                self.version,
                self.runtime.signatures,
                self.runtime.signature_defs,
                self.card,
                self.runtime_name,
            )
        return self._view


@dataclass(eq=False)
class VersionRecord:
    """One version the manager knows of, in any state."""

    model: str
    version: int
    path: str
    fingerprint: tuple[int, ...]
    footprint: int = 0
    """Estimated memory once loaded (``memory.estimate_footprint``)."""
    state: VersionState = VersionState.START
    error: str = ""
    error_code: int = 2
    served: ServedVersion | None = None

    @property
    def label(self) -> str:
        return f"{self.model}:{self.version}"

    def status(self) -> VersionStatus:
        return VersionStatus(self.version, self.state, self.error, self.error_code)

    @property
    def holds_memory(self) -> bool:
        return self.state not in (VersionState.FAILED, VersionState.END)


def start_serving(
    model: str, version: int, loaded: LoadedModel, batcher: Batcher, metrics: VersionMetrics
) -> ServedVersion:
    """A loaded version, served: its gauges tracked and its batcher started."""
    served = ServedVersion(model, version, loaded.runtime, loaded.card, batcher, metrics)
    served.runtime_name = loaded.runtime_name
    metrics.track(
        queue_depth=lambda: batcher.queue_depth,
        inflight=lambda: served.inflight,
        queue_capacity=batcher.queue_capacity,
    )
    batcher.start()
    return served


class VersionHold:
    """One request's hold on a served version: while held, the version is not unloaded (a
    plain context manager; an ``asynccontextmanager`` cost a generator per request)."""

    __slots__ = ("served",)

    def __init__(self, served: ServedVersion) -> None:
        self.served = served

    def __enter__(self) -> ServedVersion:
        self.served.inflight += 1
        self.served.idle.clear()
        return self.served

    def __exit__(self, *exc_info: object) -> None:
        self.served.inflight -= 1
        if self.served.inflight == 0:
            self.served.idle.set()
