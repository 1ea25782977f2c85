"""One request as every protocol hands it to the core, and the scope that counts its outcome.

Each adapter opens a ``RequestScope`` (``core.scope(protocol, model)``) before it decodes
anything and runs the request through it. Whatever happens inside — a body over the limit,
malformed JSON, an unknown version, a full queue, a cancelled client, success — the scope
counts the outcome exactly once when it closes: in ``primer_requests_total`` under the
version that served it, or with an empty version (and the model's name only when the
repository serves that model, so client-chosen names never become label values) when none
was resolved; limits also in ``primer_rejected_requests_total``; and one access-log line.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, TypeVar

import numpy as np

from contract.errors import ContractError
from contract.model_card import ModelCard
from service.errors import (
    ClientClosedRequestError,
    DeadlineExceededError,
    InternalError,
    PayloadTooLargeError,
    QueueFullError,
    ServingError,
    serving_error,
)
from service.logging_setup import REQUEST_ID, log_access

if TYPE_CHECKING:
    from service.inference.core import InferenceCore
    from service.models.manager import ServedVersion

logger = logging.getLogger(__name__)
T = TypeVar("T")
_SHED = (QueueFullError, DeadlineExceededError, PayloadTooLargeError)


@dataclass
class InferenceRequest:
    """One request, as every protocol sees it once decoded.

    ``inputs`` holds numeric arrays, or object arrays of ``bytes`` for string tensors
    (image bytes for a model with an image contract are decoded and preprocessed by the
    core). ``version`` or ``label`` pick a version; with neither, the model's traffic split
    (``metadata`` carries the request's headers or gRPC metadata, lower-case, for a sticky
    key) or else the latest serves.
    """

    model: str
    inputs: dict[str, np.ndarray]
    version: int | None = None
    label: str | None = None
    signature: str | None = None
    output_filter: Sequence[str] | None = None
    timeout_s: float | None = None
    protocol: str = "rest"
    metadata: Mapping[str, str] = field(default_factory=dict)


@dataclass
class Timing:
    """Seconds spent in each stage of one request."""

    preprocess_s: float = 0.0
    queue_s: float = 0.0
    inference_s: float = 0.0
    postprocess_s: float = 0.0
    total_s: float = 0.0
    batch_rows: int = 0


@dataclass
class InferenceResult:
    """The outputs of one request and what produced them."""

    model: str
    version: int
    signature: str
    outputs: dict[str, np.ndarray]
    card: ModelCard | None
    timing: Timing = field(default_factory=Timing)


@dataclass(frozen=True)
class ClassScore:
    """One of the top-k classes of an image."""

    index: int
    label: str
    score: float


class RequestScope:
    """One request from the adapter's first look at it to its answer (a ``with`` block).

    Args:
        core: the inference core that runs the request.
        protocol: the adapter's ``protocol`` label, e.g. ``rest_tfserving``.
        model: the model the request names (a client string until it is resolved).
    """

    __slots__ = ("_core", "model", "opened", "protocol", "served", "started", "timing")

    def __init__(self, core: InferenceCore, protocol: str, model: str) -> None:
        self._core = core
        self.protocol = protocol
        self.model = model
        self.opened = time.monotonic()
        self.started = 0.0
        """When the core took the decoded request (the request histograms start here)."""
        self.served: ServedVersion | None = None
        self.timing: Timing | None = None

    @property
    def served_version(self) -> str:
        """The version that served the request, for the ``X-Model-Version`` header."""
        return "" if self.served is None else str(self.served.version)

    def __enter__(self) -> RequestScope:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> bool:
        if exc is None:
            self._count("OK", None)
            return False
        if isinstance(exc, ServingError):
            self._count(exc.grpc_code.name, exc)
        elif isinstance(exc, ContractError):  # rendered by the transport's handlers
            error = serving_error(exc)
            self._count(error.grpc_code.name, error)
        elif isinstance(exc, asyncio.CancelledError):  # the client went away
            error = ClientClosedRequestError("the client cancelled the request")
            self._count(error.grpc_code.name, error)
        elif isinstance(exc, Exception):
            logger.error("unexpected failure serving %s", self.model, exc_info=exc)
            error = InternalError(f"internal error: {type(exc).__name__}")
            self._count(error.grpc_code.name, error)
            raise error from exc
        return False  # never swallows the error

    async def infer(
        self, request: InferenceRequest, encode: Callable[[InferenceResult], T]
    ) -> tuple[T, Timing]:
        """Run the request through the core and encode its response (see ``InferenceCore``)."""
        return await self._core.infer(self, request, encode)

    async def classify(
        self,
        request: InferenceRequest,
        k: int,
    ) -> tuple[list[list[ClassScore]], InferenceResult, Timing]:
        """Top-k classes of the encoded images in ``request`` (see ``InferenceCore``)."""
        return await self._core.classify(self, request, k)

    def _count(self, code: str, error: ServingError | None) -> None:
        now = time.monotonic()
        served = self.served
        if served is not None:
            duration = self.timing.total_s if self.timing else now - self.started
            served.metrics.request_done(self.protocol, code, duration)
            if isinstance(error, _SHED):
                served.metrics.rejected(error.reason)
        else:
            self._core.count_unresolved(self.model, self.protocol, code, error)
        if self._core.access_log:  # the one access-log hook, for every protocol
            log_access(
                REQUEST_ID.get(),
                self.model,
                served and served.version,
                self.protocol,
                code,
                now - (self.started or self.opened),
            )
