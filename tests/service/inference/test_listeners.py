"""Listeners hear of every answered request, after it is encoded; a broken one fails nothing."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from service.errors import InvalidInputError
from service.inference.events import Answered
from service.inference.request import InferenceRequest
from tests.conftest import ServerThread


class Recorder:
    def __init__(self) -> None:
        self.events: list[Answered] = []

    def answered(self, event: Answered) -> None:
        self.events.append(event)


class Broken:
    def answered(self, event: Answered) -> None:
        raise RuntimeError("a listener bug")


def _infer(server: ServerThread, request: InferenceRequest) -> Any:
    async def go() -> Any:
        with server.server.core.scope("listener_test", request.model) as scope:
            return await scope.infer(request, lambda result: result.outputs)

    return server.run(go())


def test_a_listener_sees_each_answer_and_a_broken_one_fails_nothing(
    server: ServerThread,
) -> None:
    core = server.server.core
    recorder = Recorder()
    saved = core._listeners
    try:
        core.add_listener(Broken())
        core.add_listener(recorder)
        outputs, _ = _infer(server, InferenceRequest("half_plus_two", {"": np.ones((2, 3))}))
        np.testing.assert_allclose(outputs["y"], np.full((2, 3), 2.5))
        with pytest.raises(InvalidInputError):  # a refused request is not an answer
            _infer(server, InferenceRequest("half_plus_two", {"x": np.ones((1, 4))}))
    finally:
        core._listeners = saved
    (event,) = recorder.events
    assert (event.model, event.version, event.signature, event.protocol) == (
        "half_plus_two",
        1,
        "serving_default",
        "listener_test",
    )
    assert event.inputs["x"].dtype == np.float32  # as the model ran it, not as sent
    np.testing.assert_allclose(event.outputs["y"], outputs["y"])
    assert event.timing.total_s > 0 and event.received_at > 0
