"""What the core tells listeners after it answers a request: one ``Answered`` event each.

Listeners (a payload log, shadow traffic, live evaluation) register with
``InferenceCore.add_listener``. ``answered`` runs on the event loop right after the response
is encoded and before it is sent, so it must be quick and must never block: hand any real
work to a bounded queue or a task. A listener that raises is logged and otherwise ignored;
it never fails the request.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from service.inference.request import InferenceRequest, Timing


@dataclass(frozen=True)
class Answered:
    """One request the core answered successfully.

    Attributes:
        request_id: the request's id (the client's ``x-request-id``, or the server's).
        protocol: the adapter's ``protocol`` label.
        model: the model that served it.
        version: the version that served it.
        signature: the signature that ran.
        request: the request as the adapter decoded it (encoded images still as bytes).
        inputs: the arrays the model ran on (preprocessed, named by the signature).
        outputs: the arrays answered (after any output filter).
        timing: the stage timings.
        received_at: wall-clock time (``time.time()``) the core took the request.
    """

    request_id: str
    protocol: str
    model: str
    version: int
    signature: str
    request: InferenceRequest
    inputs: dict[str, np.ndarray]
    outputs: dict[str, np.ndarray]
    timing: Timing
    received_at: float


class AnswerListener(Protocol):
    """Receives every ``Answered`` event (see the module docstring for the rules)."""

    def answered(self, event: Answered) -> None: ...
