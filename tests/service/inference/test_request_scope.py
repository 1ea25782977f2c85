"""The request scope counts every outcome once, under one label set, whatever happens inside.

Runs on the shared server's own event loop and core (real fixture models), and reads the
server's metric registry directly.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Awaitable, Callable
from typing import Any

import numpy as np
import pytest

from contract.layout import parse_version
from service.errors import InternalError, InvalidInputError, ModelNotFoundError, QueueFullError
from service.inference.request import InferenceRequest, RequestScope
from tests.conftest import ServerThread

PROTOCOL = "scope_test"
ROW = {"x": np.ones((1, 3), np.float32)}


def _requests(server: ServerThread) -> dict[tuple[str, ...], float]:
    counts = {}
    for family in server.server.metrics.registry.collect():
        if family.name != "primer_requests":
            continue
        for sample in family.samples:
            labels = sample.labels
            if sample.name.endswith("_total") and labels["protocol"] == PROTOCOL:
                counts[(labels["model"], labels["version"], labels["code"])] = sample.value
    return counts


def _rejected(server: ServerThread, reason: str) -> float:
    total = 0.0
    for family in server.server.metrics.registry.collect():
        for sample in family.samples:
            if sample.name == "primer_rejected_requests_total" and (
                sample.labels["reason"] == reason
            ):
                total += sample.value
    return total


def _run(server: ServerThread, model: str, body: Callable[[RequestScope], Awaitable[Any]]) -> Any:
    async def go() -> Any:
        with server.server.core.scope(PROTOCOL, model) as scope:
            return await body(scope)

    return server.run(go())


def _delta(server: ServerThread, model: str, body: Callable[[RequestScope], Awaitable[Any]]):
    """(outcome, {labels: increment}) of running ``body`` in a scope."""
    before = _requests(server)
    try:
        outcome: Any = _run(server, model, body)
    except BaseException as exc:
        outcome = exc
    after = _requests(server)
    delta = {k: v - before.get(k, 0.0) for k, v in after.items() if v != before.get(k, 0.0)}
    return outcome, delta


def test_success_counts_ok_under_the_serving_version(server: ServerThread) -> None:
    async def body(scope: RequestScope) -> Any:
        return await scope.infer(InferenceRequest("half_plus_two", ROW), lambda r: r.outputs)

    outcome, delta = _delta(server, "half_plus_two", body)
    np.testing.assert_allclose(outcome[0]["y"], [[2.5, 2.5, 2.5]])
    assert delta == {("half_plus_two", "1", "OK"): 1}


@pytest.mark.parametrize(
    ("model", "raise_", "labels"),
    [
        # refused while the adapter decoded the request, before any version was resolved
        ("half_plus_two", InvalidInputError("bad json"), ("half_plus_two", "", "INVALID_ARGUMENT")),
        # a client-chosen name the repository does not serve never becomes a label value
        ("no_such_model", InvalidInputError("bad json"), ("", "", "INVALID_ARGUMENT")),
        # the shared contract's error, mapped into the table (404)
        ("half_plus_two", "parse_version", ("half_plus_two", "", "NOT_FOUND")),
    ],
)
def test_a_refusal_before_the_core_counts_once(
    server: ServerThread, model: str, raise_: Any, labels: tuple[str, ...]
) -> None:
    async def body(scope: RequestScope) -> None:
        if raise_ == "parse_version":
            parse_version("x1")
        raise raise_

    outcome, delta = _delta(server, model, body)
    assert isinstance(outcome, InvalidInputError | ValueError)
    assert delta == {labels: 1}


def test_an_unknown_version_counts_under_the_served_model(server: ServerThread) -> None:
    async def body(scope: RequestScope) -> None:
        await scope.infer(InferenceRequest("half_plus_two", ROW, version=9), lambda r: r)

    outcome, delta = _delta(server, "half_plus_two", body)
    assert isinstance(outcome, ModelNotFoundError)
    assert delta == {("half_plus_two", "", "NOT_FOUND"): 1}


def test_a_failure_after_resolution_counts_under_the_version(server: ServerThread) -> None:
    async def body(scope: RequestScope) -> None:
        await scope.infer(
            InferenceRequest("half_plus_two", {"x": np.ones((1, 4), np.float32)}), lambda r: r
        )

    outcome, delta = _delta(server, "half_plus_two", body)
    assert isinstance(outcome, InvalidInputError) and "expects [-1, 3]" in outcome.message
    assert delta == {("half_plus_two", "1", "INVALID_ARGUMENT"): 1}


def test_a_shed_request_also_counts_its_reason(server: ServerThread) -> None:
    before = _rejected(server, "queue_full")

    async def body(scope: RequestScope) -> None:
        def full(result: Any) -> None:
            raise QueueFullError("full")  # as the batcher raises it

        await scope.infer(InferenceRequest("half_plus_two", ROW), full)

    outcome, delta = _delta(server, "half_plus_two", body)
    assert isinstance(outcome, QueueFullError)
    assert delta == {("half_plus_two", "1", "RESOURCE_EXHAUSTED"): 1}
    assert _rejected(server, "queue_full") == before + 1


def test_an_unexpected_exception_becomes_internal_and_counts_once(server: ServerThread) -> None:
    async def body(scope: RequestScope) -> None:
        def broken(result: Any) -> None:
            raise ZeroDivisionError

        await scope.infer(InferenceRequest("half_plus_two", ROW), broken)

    outcome, delta = _delta(server, "half_plus_two", body)
    assert isinstance(outcome, InternalError)
    assert outcome.message == "internal error: ZeroDivisionError"
    assert isinstance(outcome.__cause__, ZeroDivisionError)
    assert delta == {("half_plus_two", "1", "INTERNAL"): 1}


def test_a_cancelled_request_counts_cancelled_once(server: ServerThread) -> None:
    async def body(scope: RequestScope) -> None:
        raise asyncio.CancelledError  # the client went away

    outcome, delta = _delta(server, "half_plus_two", body)
    assert isinstance(outcome, concurrent.futures.CancelledError)  # as the loop's future reports
    assert delta == {("half_plus_two", "", "CANCELLED"): 1}
