"""The protocol-neutral core: resolve → validate → preprocess → batch → postprocess.

Every adapter (TF Serving REST/gRPC, KServe v2 REST/gRPC) opens a ``RequestScope`` with
``scope()``, hands the core numpy arrays and an ``encode`` function for its own response
format, and reads models through the views here (``statuses``, ``model_view``); it never
touches ``service.models``. The core raises the typed errors of ``service.errors`` and times
every stage; the scope counts every outcome.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor
from typing import TypeVar

import numpy as np

from contract.errors import ContractError
from contract.preprocessing import preprocess_image, to_input_layout
from service.config import Settings
from service.errors import (
    InternalError,
    InvalidInputError,
    ModelNotFoundError,
    ModelUnavailableError,
    PayloadTooLargeError,
    ServingError,
    serving_error,
)
from service.inference import validate
from service.inference.events import Answered, AnswerListener
from service.inference.request import (
    ClassScore,
    InferenceRequest,
    InferenceResult,
    RequestScope,
    Timing,
)
from service.logging_setup import REQUEST_ID
from service.metrics import Metrics
from service.models.manager import ModelManager, ServedVersion
from service.views import (
    ExperimentView,
    ModelView,
    RolloutView,
    SignatureSpec,
    TensorSpec,
    VersionStatus,
)

logger = logging.getLogger(__name__)
T = TypeVar("T")
R = TypeVar("R")


class InferenceCore:
    """Validation, preprocessing, batching and metrics shared by every protocol.

    Args:
        manager: resolves model versions.
        settings: limits and default deadline.
        metrics: the metric catalogue.
        preprocess_executor: threads that decode images off the event loop.
    """

    def __init__(
        self,
        manager: ModelManager,
        settings: Settings,
        metrics: Metrics,
        preprocess_executor: Executor,
    ) -> None:
        self._manager = manager
        self._settings = settings
        self._metrics = metrics
        self._preprocess_executor = preprocess_executor
        self._listeners: tuple[AnswerListener, ...] = ()

    @property
    def access_log(self) -> bool:
        """Whether each request writes an access-log line (read per request: a setting)."""
        return self._settings.access_log

    def add_listener(self, listener: AnswerListener) -> None:
        """Tell ``listener`` of every request answered from now on (see ``events``)."""
        self._listeners = (*self._listeners, listener)

    def scope(self, protocol: str, model: str) -> RequestScope:
        """Open the scope of one request naming ``model`` (see ``RequestScope``)."""
        return RequestScope(self, protocol, model)

    async def infer(
        self, scope: RequestScope, request: InferenceRequest, encode: Callable[[InferenceResult], T]
    ) -> tuple[T, Timing]:
        """Run one request and encode its response.

        Args:
            scope: the request's scope (records the version and timings it counts).
            request: the decoded request.
            encode: the adapter's response encoder (timed as postprocessing).

        Returns:
            The encoded response and the stage timings.

        Raises:
            ServingError: any typed error of the error table.
        """
        scope.started = time.monotonic()
        return await self._on_routed_version(
            scope, request, lambda served: self._run(scope, served, request, encode)
        )

    async def classify(
        self, scope: RequestScope, request: InferenceRequest, k: int
    ) -> tuple[list[list[ClassScore]], InferenceResult, Timing]:
        """Top-k classes for each encoded image, via the model's single image input.

        ``request.inputs`` holds the images under ``validate.UNNAMED_INPUT``.
        """
        scope.started = time.monotonic()

        async def run(
            served: ServedVersion,
        ) -> tuple[list[list[ClassScore]], InferenceResult, Timing]:
            card = served.card
            if len(served.signature(None).inputs) != 1 or card is None or card.image is None:
                raise InvalidInputError(
                    f"model {request.model} cannot classify images: it needs one input and an "
                    "image contract in model.json"
                )
            if k < 1:
                raise InvalidInputError(f"k must be a positive integer, got {k}")
            labels = card.labels

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

            (classes, result), timing = await self._run(scope, served, request, top_k)
            return classes, result, timing

        return await self._on_routed_version(scope, request, run)

    async def _on_routed_version(
        self,
        scope: RequestScope,
        request: InferenceRequest,
        run: Callable[[ServedVersion], Awaitable[R]],
    ) -> R:
        """``run`` on the version serving ``request``, held for the call.

        A request the traffic split routed to a rollout candidate that fails with a server
        error (500, 503) runs once more on the rollout's baseline, within the same deadline;
        the candidate's error gate still counts the failure (``RolloutController.fallback``).
        """
        version = self._version(request)
        rollouts = self._manager.rollouts
        routed = request.version is None and request.label is None
        fallback = rollouts.fallback(request.model, version) if routed and version else None
        try:
            with self._manager.acquire(request.model, version) as served:
                scope.served = served
                return await run(served)
        except (InternalError, ModelUnavailableError) as error:
            if fallback is None or version is None:
                raise
            rollouts.retried(request.model, version, str(error))
        with self._manager.acquire(request.model, fallback) as served:
            scope.served = served
            return await run(served)

    def inflight(self) -> int:
        """Requests in flight now (the shadow mirror sheds its work while this is high)."""
        return self._manager.inflight()

    def rollout(self, model: str, action: str | None = None) -> RolloutView:
        """The state of a model's rollout, after ``action`` (pause | resume | abort) if given.

        Raises:
            ModelNotFoundError: the model has no rollout.
            InvalidInputError: an unknown action, or one its phase does not allow.
        """
        rollouts = self._manager.rollouts
        if model not in rollouts.states:
            raise ModelNotFoundError(f"model {model[:64]!r} has no rollout")
        if action is not None:
            try:
                rollouts.control(model, action)
            except ValueError as exc:
                raise InvalidInputError(str(exc)) from None
        view = rollouts.view(model)
        assert view is not None
        return view

    def experiments(self, model: str) -> ExperimentView:
        """How a model's unversioned requests are shared: split, shadow, rollout."""
        return self._manager.experiment_view(model)

    def _version(self, request: InferenceRequest) -> int | None:
        if request.label is not None:
            return self._manager.resolve_label(request.model, request.label)
        if request.version is None:
            return self._manager.route(request.model, request.metadata)
        return request.version

    async def _run(
        self,
        scope: RequestScope,
        served: ServedVersion,
        request: InferenceRequest,
        encode: Callable[[InferenceResult], T],
    ) -> tuple[T, Timing]:
        started = scope.started
        deadline = started + (request.timeout_s or self._settings.request_timeout_s)
        metrics = served.metrics
        signature = served.signature(request.signature)
        outputs_wanted = validate.output_names(signature, request.output_filter)
        inputs, rows, missing = await self._prepare_inputs(served, signature, request.inputs)
        preprocess_s = time.monotonic() - started
        metrics.preprocess_duration.observe(preprocess_s)
        outputs, stats = await served.batcher.submit(signature.name, inputs, rows, deadline)
        if missing:  # TF Serving's unit-dim leniency
            outputs = validate.drop_unit_dims(outputs, missing)
        metrics.queue_duration.observe(stats.queue_s)
        metrics.inference_duration.observe(stats.inference_s)
        if outputs_wanted is not None:
            outputs = {name: outputs[name] for name in outputs_wanted}
        timing = Timing(
            preprocess_s=preprocess_s,
            queue_s=stats.queue_s,
            inference_s=stats.inference_s,
            batch_rows=stats.batch_rows,
        )
        result = InferenceResult(
            served.model, served.version, signature.name, outputs, served.card, timing
        )
        encoded = encode(result)
        timing.total_s = time.monotonic() - started
        # stages are contiguous, so they add up to the total: postprocess runs from the end
        # of the model call (resuming this request included)
        timing.postprocess_s = max(
            0.0, timing.total_s - timing.preprocess_s - timing.queue_s - timing.inference_s
        )
        metrics.postprocess_duration.observe(timing.postprocess_s)
        metrics.items.inc(validate.output_rows(outputs))
        scope.timing = timing
        if self._listeners:
            self._tell(
                Answered(
                    REQUEST_ID.get(),
                    scope.protocol,
                    served.model,
                    served.version,
                    signature.name,
                    request,
                    inputs,
                    outputs,
                    timing,
                    time.time() - timing.total_s,
                )
            )
        return encoded, timing

    def _tell(self, event: Answered) -> None:
        for listener in self._listeners:
            try:
                listener.answered(event)
            except Exception:  # a listener never fails the request it hears about
                logger.exception("answer listener %r failed", listener)

    async def _prepare_inputs(
        self, served: ServedVersion, signature: SignatureSpec, inputs: dict[str, np.ndarray]
    ) -> tuple[dict[str, np.ndarray], int, int]:
        """The inputs checked (images decoded), their rows, and the trailing unit dimensions
        the request left out (``validate.missing_unit_dims``; 0 unless every numeric input
        lacks the same number)."""
        named = validate.named_inputs(served.model, signature, inputs)
        image_model = served.card is not None and served.card.image is not None
        prepared = {}
        missing = set()
        admitted = False
        for name, value in named.items():
            spec = signature.inputs[name]
            if validate.is_bytes_array(value) and not spec.is_string:
                if not admitted:  # shed before decoding (submit checks again after it)
                    served.batcher.admit(validate.claimed_rows(inputs))
                    admitted = True
                prepared[name] = await self._decode_images(served, spec, value)
            else:
                missing.add(validate.missing_unit_dims(spec, value))
                prepared[name] = validate.conform(served.model, spec, value, image_model)
        rows = validate.row_count(prepared, self._settings.max_rows_per_request)
        return prepared, rows, missing.pop() if len(missing) == 1 else 0

    async def _decode_images(
        self, served: ServedVersion, spec: TensorSpec, value: np.ndarray
    ) -> np.ndarray:
        contract = served.card.image if served.card else None
        if contract is None:
            raise InvalidInputError(
                f"input {spec.name!r} of model {served.model} takes {spec.dtype_name} values, "
                "not bytes (the model has no image contract in model.json)"
            )
        images = validate.image_batch(spec, value, self._settings.max_rows_per_request)
        max_pixels = self._settings.max_image_pixels

        def decode_all() -> np.ndarray:
            return np.stack(
                [
                    preprocess_image(bytes(image), contract, max_pixels=max_pixels)
                    for image in images
                ]
            )

        try:
            rows = await asyncio.get_running_loop().run_in_executor(
                self._preprocess_executor, decode_all
            )
            layout = to_input_layout(rows, spec.shape_for_display())
        except ContractError as exc:  # a bad image: 400, or 413 over the pixel limit
            raise serving_error(exc) from exc
        return layout.astype(spec.dtype, copy=False)

    # ----- counting refusals (the scope's half that needs the repository) ----------------
    def count_unresolved(
        self, model: str, protocol: str, code: str, error: ServingError | None
    ) -> None:
        """Count a request no version was resolved for, under bounded label values."""
        name = model if self._manager.serves(model) else ""
        self._metrics.requests.labels(name, "", protocol, code).inc()
        if isinstance(error, PayloadTooLargeError):
            self._metrics.rejected.labels(name, "", error.reason).inc()

    # ----- views ---------------------------------------------------------------------------
    def model_names(self) -> list[str]:
        """Every model the repository holds, in any state."""
        return self._manager.model_names()

    def is_ready(self) -> bool:
        """Whether the first load is done and every model has an AVAILABLE version."""
        return self._manager.is_ready()

    def statuses(
        self, model: str, version: int | None = None, label: str | None = None
    ) -> list[VersionStatus]:
        """Every version of a model (or the one asked for), newest first."""
        statuses = self._manager.statuses(model)
        if label is not None:
            version = self._manager.resolve_label(model, label)
        if version is None:
            return statuses
        chosen = [status for status in statuses if status.version == version]
        if not chosen:
            raise ModelNotFoundError(f"model {model!r} has no version {version}")
        return chosen

    def model_view(
        self, model: str, version: int | None = None, label: str | None = None
    ) -> ModelView:
        """The AVAILABLE version that would serve, as metadata describes it."""
        if label is not None:
            version = self._manager.resolve_label(model, label)
        return self._manager.resolve(model, version).view()
