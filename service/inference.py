"""The protocol-neutral core: resolve → validate → preprocess → batch → postprocess.

Every adapter (TF Serving REST/gRPC, KServe v2 REST/gRPC) hands this core numpy arrays and
an ``encode`` function for its own response format; the core raises the typed errors of
``service.errors``, times every stage and records every request metric.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import TypeVar

import numpy as np

from service.config import Settings
from service.errors import (
    ClientClosedRequestError,
    DeadlineExceededError,
    InternalError,
    InvalidInputError,
    PayloadTooLargeError,
    QueueFullError,
    ServingError,
)
from service.logging_setup import REQUEST_ID, log_access
from service.metrics import Metrics
from service.model_card import ModelCard
from service.preprocessing import preprocess_image, to_input_layout
from service.repository import ModelRepository, ModelVersion
from service.runtime import Signature, TensorSpec

logger = logging.getLogger(__name__)
T = TypeVar("T")
UNNAMED_INPUT = ""
"""Key of an input given without a name (TF Serving's single-input request forms)."""


@dataclass
class InferenceRequest:
    """One request, as every protocol sees it once decoded.

    ``inputs`` holds numeric arrays, or object arrays of ``bytes`` for string tensors
    (image bytes for a model with an image contract are decoded and preprocessed here).
    """

    model: str
    inputs: dict[str, np.ndarray]
    version: int | None = None
    signature: str | None = None
    output_filter: Sequence[str] | None = None
    timeout_s: float | None = None
    protocol: str = "rest"


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


class RefusalCounter:
    """The context manager of ``InferenceCore.refusals``."""

    def __init__(self, core: InferenceCore, model: str, protocol: str) -> None:
        self._core = core
        self._model = model
        self._protocol = protocol

    def __enter__(self) -> None:
        return None

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: object
    ) -> bool:
        if isinstance(error, ServingError):
            self._core.count_refused(self._model, self._protocol, error)
        return False  # never swallows the error


class InferenceCore:
    """Validation, preprocessing, batching and metrics shared by every protocol.

    Args:
        repository: resolves model versions.
        settings: limits and default deadline.
        metrics: the metric catalogue.
        preprocess_executor: threads that decode images off the event loop.
    """

    def __init__(
        self,
        repository: ModelRepository,
        settings: Settings,
        metrics: Metrics,
        preprocess_executor: Executor,
    ) -> None:
        self.repository = repository
        self._settings = settings
        self._metrics = metrics
        self._preprocess_executor = preprocess_executor

    async def infer(
        self, request: InferenceRequest, encode: Callable[[InferenceResult], T]
    ) -> tuple[T, Timing]:
        """Run one request and encode its response; every outcome is counted.

        Args:
            request: the decoded request.
            encode: the adapter's response encoder (timed as postprocessing).

        Returns:
            The encoded response and the stage timings.

        Raises:
            ServingError: any typed error of the error table.
        """
        started = time.monotonic()
        timeout = request.timeout_s or self._settings.request_timeout_s
        deadline = started + timeout
        mv: ModelVersion | None = None
        code = "CANCELLED"
        try:
            async with self.repository.acquire(request.model, request.version) as mv:
                assert mv.metrics is not None
                result = await self._run(mv, request, deadline, started)
                encoded = encode(result)
                timing = result.timing
                timing.total_s = time.monotonic() - started
                # stages are contiguous, so they add up to the total: postprocess runs from
                # the end of the model call (resuming this request included)
                timing.postprocess_s = max(
                    0.0, timing.total_s - timing.preprocess_s - timing.queue_s - timing.inference_s
                )
                mv.metrics.postprocess_duration.observe(timing.postprocess_s)
                mv.metrics.items.inc(_rows(result.outputs))
            mv.metrics.request_done(request.protocol, "OK", timing.total_s)
            code = "OK"
            return encoded, timing
        except ServingError as exc:
            code = exc.grpc_code.name
            self._count_failure(mv, request, exc, started)
            raise
        except asyncio.CancelledError:  # the client went away (HTTP disconnect, gRPC cancel)
            error = ClientClosedRequestError("the client cancelled the request")
            code = error.grpc_code.name
            self._count_failure(mv, request, error, started)
            raise
        except Exception as exc:
            logger.exception("unexpected failure serving %s", request.model)
            error = InternalError(f"internal error: {type(exc).__name__}")
            code = error.grpc_code.name
            self._count_failure(mv, request, error, started)
            raise error from exc
        finally:
            if self._settings.access_log:  # the one access-log hook, for every protocol
                log_access(
                    REQUEST_ID.get(),
                    request.model,
                    mv and mv.version,
                    request.protocol,
                    code,
                    time.monotonic() - started,
                )

    async def _run(
        self, mv: ModelVersion, request: InferenceRequest, deadline: float, started: float
    ) -> InferenceResult:
        assert mv.runtime is not None and mv.batcher is not None and mv.metrics is not None
        signature = mv.runtime.signature(request.signature)
        outputs_wanted = self._output_names(signature, request.output_filter)
        mv.batcher.admit(_claimed_rows(request.inputs))  # shed load before decoding
        inputs, rows = await self._prepare_inputs(mv, signature, request.inputs)
        preprocess_s = time.monotonic() - started
        mv.metrics.preprocess_duration.observe(preprocess_s)
        outputs, stats = await mv.batcher.submit(signature.name, inputs, rows, deadline)
        mv.metrics.queue_duration.observe(stats.queue_s)
        mv.metrics.inference_duration.observe(stats.inference_s)
        if outputs_wanted is not None:
            outputs = {name: outputs[name] for name in outputs_wanted}
        timing = Timing(
            preprocess_s=preprocess_s,
            queue_s=stats.queue_s,
            inference_s=stats.inference_s,
            batch_rows=stats.batch_rows,
        )
        return InferenceResult(mv.model, mv.version, signature.name, outputs, mv.card, timing)

    def refusals(self, model: str, protocol: str) -> RefusalCounter:
        """Counts a ``ServingError`` raised inside the ``with`` block: a request its adapter
        refused before it reached the core (a body over the limit, malformed JSON or tensors).

        It goes into ``primer_requests_total`` (and ``primer_rejected_requests_total`` for a
        limit) with an empty version label, under the model's name when the repository serves
        that model and under the empty name otherwise, so client-chosen names never become
        label values. Requests that reach ``infer`` are counted there instead.
        """
        return RefusalCounter(self, model, protocol)

    def count_refused(self, model: str, protocol: str, error: ServingError) -> None:
        """Count one request refused before ``infer`` (see ``refusals``)."""
        name = model if model in self.repository.model_names() else ""
        self._metrics.requests.labels(name, "", protocol, error.grpc_code.name).inc()
        if isinstance(error, PayloadTooLargeError):
            self._metrics.rejected.labels(name, "", error.reason).inc()

    def _count_failure(
        self,
        mv: ModelVersion | None,
        request: InferenceRequest,
        error: ServingError,
        started: float,
    ) -> None:
        code = error.grpc_code.name
        duration = time.monotonic() - started
        if mv is not None and mv.metrics is not None:
            mv.metrics.request_done(request.protocol, code, duration)
            if isinstance(error, QueueFullError | DeadlineExceededError | PayloadTooLargeError):
                mv.metrics.rejected(error.reason)
        else:  # unresolved model: one bounded label set rather than client-chosen names
            self._metrics.requests.labels("", "", request.protocol, code).inc()

    # ----- validation -------------------------------------------------------------------
    @staticmethod
    def _output_names(signature: Signature, wanted: Sequence[str] | None) -> list[str] | None:
        if not wanted:
            return None
        unknown = [name for name in wanted if name not in signature.outputs]
        if unknown:
            raise InvalidInputError(
                f"unknown output(s) {unknown}; signature {signature.name!r} has outputs "
                f"{sorted(signature.outputs)}"
            )
        return list(dict.fromkeys(wanted))

    async def _prepare_inputs(
        self, mv: ModelVersion, signature: Signature, inputs: dict[str, np.ndarray]
    ) -> tuple[dict[str, np.ndarray], int]:
        expected = signature.inputs
        if UNNAMED_INPUT in inputs:
            if len(inputs) != 1 or len(expected) != 1:
                raise InvalidInputError(
                    f"an unnamed input needs a model with exactly one input; signature "
                    f"{signature.name!r} of {mv.model} has inputs {sorted(expected)}"
                )
            inputs = {next(iter(expected)): inputs[UNNAMED_INPUT]}
        unknown = sorted(set(inputs) - set(expected))
        missing = sorted(set(expected) - set(inputs))
        if unknown or missing:
            raise InvalidInputError(
                f"model {mv.model} signature {signature.name!r} expects inputs "
                f"{sorted(expected)}; got {sorted(inputs)}"
            )
        prepared = {}
        for name, value in inputs.items():
            spec = expected[name]
            if _is_bytes_array(value) and not spec.is_string:
                prepared[name] = await self._decode_images(mv, spec, value)
            else:
                prepared[name] = _conform(mv, spec, value)
        rows = {value.shape[0] for value in prepared.values()}
        if len(rows) != 1:
            raise InvalidInputError(
                f"inputs disagree on the batch size (first dimension): "
                f"{ {name: v.shape[0] for name, v in prepared.items()} }"
            )
        count = rows.pop()
        if count == 0:
            raise InvalidInputError("the request has no rows; expected at least one")
        if count > self._settings.max_rows_per_request:
            raise PayloadTooLargeError(
                f"the request has {count} rows; the limit is {self._settings.max_rows_per_request}"
            )
        return prepared, count

    async def _decode_images(
        self, mv: ModelVersion, spec: TensorSpec, value: np.ndarray
    ) -> np.ndarray:
        contract = mv.card.image if mv.card else None
        if contract is None:
            raise InvalidInputError(
                f"input {spec.name!r} of model {mv.model} takes {spec.tf_dtype.name} values, "
                "not bytes (the model has no image contract in model.json)"
            )
        images = value.reshape(-1)
        if value.ndim != 1 or len(images) == 0:
            raise InvalidInputError(
                f"image input {spec.name!r} expects a list of encoded images, got shape "
                f"{list(value.shape)}"
            )
        if len(images) > self._settings.max_rows_per_request:
            raise PayloadTooLargeError(
                f"the request has {len(images)} images; the limit is "
                f"{self._settings.max_rows_per_request}"
            )
        max_pixels = self._settings.max_image_pixels

        def decode_all() -> np.ndarray:
            return np.stack(
                [
                    preprocess_image(bytes(image), contract, max_pixels=max_pixels)
                    for image in images
                ]
            )

        rows = await asyncio.get_running_loop().run_in_executor(
            self._preprocess_executor, decode_all
        )
        return to_input_layout(rows, spec.shape_for_display()).astype(spec.dtype, copy=False)

    # ----- classification ---------------------------------------------------------------
    async def classify(
        self,
        model: str,
        version: int | None,
        images: list[bytes],
        k: int,
        protocol: str = "rest",
        timeout_s: float | None = None,
    ) -> tuple[list[list[ClassScore]], InferenceResult, Timing]:
        """Top-k classes for each encoded image, via the model's single image input."""
        try:
            mv = self.repository.resolve(model, version)
            signature = mv.runtime.signature(None) if mv.runtime else None
            if (
                signature is None
                or len(signature.inputs) != 1
                or mv.card is None
                or mv.card.image is None
            ):
                raise InvalidInputError(
                    f"model {model} cannot classify images: it needs one input and an image "
                    "contract in model.json"
                )
            if k < 1:
                raise InvalidInputError(f"k must be a positive integer, got {k}")
        except ServingError as exc:  # counted like every other outcome
            self._count_failure(
                None, InferenceRequest(model, {}, protocol=protocol), exc, time.monotonic()
            )
            raise
        (input_name,) = signature.inputs
        request = InferenceRequest(
            model,
            {input_name: _bytes_array(images)},
            version=mv.version,
            protocol=protocol,
            timeout_s=timeout_s,
        )
        labels = mv.card.labels

        def top_k(result: InferenceResult) -> tuple[list[list[ClassScore]], InferenceResult]:
            scores = next(iter(result.outputs.values()))
            scores = scores.reshape(scores.shape[0], -1)
            ranked = np.argsort(-scores, axis=1, kind="stable")[:, :k]
            return [
                [
                    ClassScore(int(i), labels[i] if i < len(labels) else str(i), float(row[i]))
                    for i in order
                ]
                for row, order in zip(scores, ranked, strict=True)
            ], result

        (classes, result), timing = await self.infer(request, top_k)
        return classes, result, timing


def _claimed_rows(inputs: dict[str, np.ndarray]) -> int:
    first = next(iter(inputs.values()), None)
    return 1 if first is None or first.ndim == 0 else max(1, int(first.shape[0]))


def _rows(outputs: dict[str, np.ndarray]) -> int:
    first = next(iter(outputs.values()), None)
    return 0 if first is None or first.ndim == 0 else int(first.shape[0])


def _bytes_array(items: Sequence[bytes]) -> np.ndarray:
    array = np.empty(len(items), dtype=object)
    array[:] = list(items)
    return array


def _is_bytes_array(value: np.ndarray) -> bool:
    return value.dtype.kind == "S" or (
        value.dtype == object
        and value.size > 0
        and isinstance(value.reshape(-1)[0], bytes | bytearray)
    )


def _conform(mv: ModelVersion, spec: TensorSpec, value: np.ndarray) -> np.ndarray:
    """Check dtype and shape of one numeric or string input against its spec."""
    if spec.is_string:
        if value.dtype.kind == "U":
            value = np.vectorize(lambda s: s.encode("utf-8"), otypes=[object])(value)
        elif value.dtype.kind not in "OS":
            raise InvalidInputError(
                f"input {spec.name!r} takes strings/bytes, got {value.dtype.name} values"
            )
    else:
        kind = value.dtype.kind
        if kind not in "biuf":
            raise InvalidInputError(
                f"input {spec.name!r} takes {spec.tf_dtype.name} numbers, got "
                f"{'strings' if kind in 'USO' else value.dtype.name}"
            )
        target_kind = spec.dtype.kind
        if kind == "f" and target_kind in "iub":
            raise InvalidInputError(
                f"input {spec.name!r} takes {spec.tf_dtype.name} integers, got "
                f"floating-point values"
            )
        if value.dtype != spec.dtype:
            with np.errstate(over="ignore", invalid="ignore"):
                value = value.astype(spec.dtype)
        if (
            target_kind == "f"
            and mv.card is not None
            and mv.card.image is not None
            and not np.isfinite(value).all()
        ):
            raise InvalidInputError(
                f"input {spec.name!r} holds NaN or infinite values (or values beyond "
                f"{spec.tf_dtype.name} range); image models expect finite pixel values"
            )
    expected = spec.shape
    if expected is not None and not (
        value.ndim == len(expected)
        and all(
            want is None or got == want
            for got, want in zip(value.shape[1:], expected[1:], strict=True)
        )
    ):
        raise InvalidInputError(
            f"input {spec.name!r} has shape {list(value.shape)}, model {mv.model} "
            f"expects {spec.shape_for_display()}"
        )
    return value
