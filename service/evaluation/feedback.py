"""Ground-truth feedback: join a label to the prediction served under a request id.

``Predictions`` remembers the predicted class of each row of recent answers (bounded by
count and age); ``Feedback.label`` checks a label against it and keeps a sliding-window live
accuracy per version, exported as ``primer_live_accuracy{model,version}``.
"""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from service.errors import (
    DuplicateFeedbackError,
    FeedbackExpiredError,
    InvalidInputError,
    ServingError,
    UnknownRequestIdError,
)
from service.evaluation_settings import EvaluationSettings
from service.inference.events import Answered
from service.metrics import Metrics


@dataclass
class Served:
    """One remembered answer: who served it, its class scores per row, and when."""

    model: str
    version: int
    scores: np.ndarray
    at: float
    labelled: bool = False

    @property
    def rows(self) -> int:
        return len(self.scores)

    @property
    def predicted(self) -> np.ndarray:
        """The argmax class of each row: computed when feedback arrives, not per request."""
        return np.argmax(self.scores, axis=1)


def class_scores(outputs: dict[str, np.ndarray]) -> np.ndarray | None:
    """A classifier's scores (rows by classes, floating); None for other outputs."""
    for value in outputs.values():
        if value.ndim == 2 and value.shape[1] > 1 and value.dtype.kind == "f":
            return value
    return None


@dataclass
class _Window:
    """The last ``maxlen`` labelled rows of a version, and how many were right."""

    correct: deque[bool]
    hits: int = 0

    def add(self, right: bool) -> float:
        """Slide one labelled row in; the window's accuracy after it."""
        if len(self.correct) == self.correct.maxlen:
            self.hits -= self.correct[0]
        self.correct.append(right)
        self.hits += right
        return self.hits / len(self.correct)


class Feedback:
    """The listener that remembers answers, and the labels joined to them.

    Args:
        settings: feedback window, capacity and accuracy window.
        metrics: the metric catalogue.
        clock: wall clock (``time.monotonic``), replaceable to test expiry.
    """

    def __init__(
        self,
        settings: EvaluationSettings,
        metrics: Metrics,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._settings = settings
        self._metrics = metrics
        self._clock = clock
        self._served: OrderedDict[str, Served] = OrderedDict()
        self._rows = 0  # predicted rows remembered, bounded by feedback_capacity
        self._forgotten: OrderedDict[str, None] = OrderedDict()
        self._windows: dict[tuple[str, int], _Window] = {}
        self._test_accuracy: dict[tuple[str, int], float] = {}

    def answered(self, event: Answered) -> None:
        """Remember each row's class scores (O(1): no I/O, a reference to the outputs)."""
        scores = class_scores(event.outputs)
        if scores is None or not event.request_id:
            return
        previous = self._served.pop(event.request_id, None)
        if previous is not None:
            self._rows -= previous.rows
        # a copy: the scores are a view of the whole batch's outputs
        served = Served(event.model, event.version, scores.copy(), self._clock())
        self._served[event.request_id] = served
        self._rows += len(scores)
        while self._rows > self._settings.feedback_capacity and len(self._served) > 1:
            old, forgotten = self._served.popitem(last=False)
            self._rows -= forgotten.rows
            self._forget(old)

    def _forget(self, request_id: str) -> None:
        self._forgotten[request_id] = None
        while len(self._forgotten) > self._settings.feedback_capacity:
            self._forgotten.popitem(last=False)

    def label(
        self, model: str, request_id: str, labels: Sequence[int | str], classes: Sequence[str]
    ) -> bool:
        """Join ``labels`` (one per row; class names or indices) to a served answer.

        Returns:
            whether every row was predicted right.

        Raises:
            UnknownRequestIdError, FeedbackExpiredError, DuplicateFeedbackError,
            InvalidInputError: each counted in ``primer_feedback_rejected``.
        """
        try:
            return self._label(model, request_id, labels, classes)
        except ServingError as error:
            self._metrics.feedback_rejected.labels(model, error.reason).inc()
            raise

    def _label(
        self, model: str, request_id: str, labels: Sequence[int | str], classes: Sequence[str]
    ) -> bool:
        served = self._served.get(request_id)
        if served is None or served.model != model:
            if request_id in self._forgotten:
                raise FeedbackExpiredError(
                    f"request {request_id!r} is older than the feedback window "
                    f"(the last {self._settings.feedback_capacity} predicted rows)"
                )
            raise UnknownRequestIdError(
                f"model {model!r} answered no request with id {request_id!r}"
            )
        if self._clock() - served.at > self._settings.feedback_window_s:
            del self._served[request_id]
            self._rows -= served.rows
            self._forget(request_id)
            raise FeedbackExpiredError(
                f"request {request_id!r} was answered more than "
                f"{self._settings.feedback_window_s:g} s ago (feedback_window_s)"
            )
        if served.labelled:
            raise DuplicateFeedbackError(f"request {request_id!r} already has its label")
        truth = [class_index(label, classes) for label in labels]
        if len(truth) != served.rows:
            raise InvalidInputError(
                f"request {request_id!r} answered {served.rows} rows; got {len(truth)} labels"
            )
        served.labelled = True
        key = (served.model, served.version)
        window = self._windows.get(key)
        if window is None:
            window = self._windows[key] = _Window(deque(maxlen=self._settings.accuracy_window))
        right = [int(p) == t for p, t in zip(served.predicted, truth, strict=True)]
        version = str(served.version)
        for one in right:
            accuracy = window.add(one)
        self._metrics.live_accuracy.labels(model, version).set(accuracy)
        self._metrics.feedback_labelled.labels(model, version).inc(len(right))
        self._metrics.feedback_correct.labels(model, version).inc(sum(right))
        return all(right)

    def version_of(self, model: str, request_id: str) -> int | None:
        """The version that answered a remembered request of ``model``, if any."""
        served = self._served.get(request_id)
        return None if served is None or served.model != model else served.version

    def set_test_accuracy(self, model: str, version: int, test_accuracy: float) -> None:
        """Export the live-accuracy alert's floor: test accuracy minus the margin."""
        self._test_accuracy[(model, version)] = test_accuracy
        floor = test_accuracy - self._settings.accuracy_alert_margin
        self._metrics.live_accuracy_threshold.labels(model, str(version)).set(floor)

    def settings_changed(self) -> None:
        """Apply reloaded settings: the accuracy window's length (the latest labels kept)
        and the alert margin (every floor exported again)."""
        length = self._settings.accuracy_window
        for (model, version), window in list(self._windows.items()):
            if window.correct.maxlen != length and window.correct:
                kept = deque(window.correct, maxlen=length)
                self._windows[(model, version)] = _Window(kept, sum(kept))
                self._metrics.live_accuracy.labels(model, str(version)).set(sum(kept) / len(kept))
        for (model, version), accuracy in self._test_accuracy.items():
            self.set_test_accuracy(model, version, accuracy)

    def accuracy(self, model: str, version: int) -> float | None:
        """The live accuracy of a version, None before its first label."""
        window = self._windows.get((model, version))
        return None if window is None or not window.correct else window.hits / len(window.correct)


def class_index(label: int | str, classes: Sequence[str]) -> int:
    """A label as a class index: a class name from ``labels.txt``, or an index.

    Raises:
        InvalidInputError: neither a class name nor an index in range.
    """
    if isinstance(label, str) and label in classes:
        return list(classes).index(label)
    if isinstance(label, int) and not isinstance(label, bool) and 0 <= label < len(classes):
        return label
    raise InvalidInputError(
        f"label {label!r} is not one of the model's classes; expected a class name "
        f"({', '.join(classes[:10])}{'…' if len(classes) > 10 else ''}) or an index "
        f"0..{len(classes) - 1}"
    )
