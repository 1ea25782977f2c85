"""The rollout's gates and moves, on counts given directly (no server)."""

from __future__ import annotations

import math

import pytest

from service.config import Settings
from service.experiment_settings import RolloutSettings
from service.metrics import Metrics
from service.models.rollout import Counts, RolloutController, failed_gate

GATES = {"max_error_ratio": 0.02, "max_p99_ratio": 1.5, "min_agreement": 0.9}


def _rollout(**gates: float) -> RolloutSettings:
    return RolloutSettings(candidate=2, baseline=1, steps=[10, 100], interval_s=1, gates=gates)


def _latency(p99_bucket: float) -> dict[float, float]:
    """100 requests: 98 under 0.01 s, 2 in the bucket ``p99_bucket``."""
    return {0.01: 98.0, p99_bucket: 100.0, math.inf: 100.0}


def test_p99_is_the_upper_bound_of_the_bucket_holding_it() -> None:
    assert Counts(buckets=_latency(0.5)).p99() == 0.5
    assert math.isnan(Counts().p99())


def test_each_gate_fails_on_its_own_measure() -> None:
    rollout = _rollout(**GATES)
    good = Counts(100, 1, _latency(0.05), compared=100, agreed=95)
    baseline = Counts(100, 0, _latency(0.05))
    assert failed_gate(rollout, good, baseline) == ""
    errors = Counts(100, 5, _latency(0.05), 100, 95)
    assert failed_gate(rollout, errors, baseline).startswith("error ratio 0.050")
    slow = Counts(100, 0, _latency(0.5), 100, 95)
    assert failed_gate(rollout, slow, baseline).startswith("p99 ratio 10.00")
    differs = Counts(100, 0, _latency(0.05), 100, 40)
    assert failed_gate(rollout, differs, baseline).startswith("agreement 0.400")
    assert failed_gate(_rollout(), errors, baseline) == ""  # no gate set, nothing checked


def test_bad_rollout_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="must be different versions"):
        RolloutSettings(candidate=1, baseline=1)
    for steps in ([50, 25, 100], [0, 100], [5, 50]):
        with pytest.raises(ValueError, match="rise from above 0 to 100"):
            RolloutSettings(candidate=2, baseline=1, steps=steps)


def test_a_candidate_moves_only_when_available_and_serving_and_controls_apply() -> None:
    settings = Settings(models={"m": {"rollout": _rollout().model_dump()}})
    available: list[int] = [1]
    controller = RolloutController(settings, Metrics(), lambda model: available)
    controller.tick(now=10)
    state = controller.states["m"]
    assert state.phase == "waiting" and controller.weights("m") == {1: 100.0, 2: 0.0}
    available.append(2)
    controller.tick(now=20)
    assert (state.phase, state.weight) == ("running", 10.0)
    controller.tick(now=30)  # the candidate served nothing: the step holds
    assert (state.phase, state.weight) == ("running", 10.0)
    controller.control("m", "pause")
    controller.tick(now=40)
    assert state.phase == "paused"
    with pytest.raises(ValueError, match="cannot pause a rollout that is paused"):
        controller.control("m", "pause")
    controller.control("m", "abort")
    assert (state.phase, controller.weights("m")) == ("aborted", {1: 100.0, 2: 0.0})


def test_retried_failures_of_the_candidate_fail_its_error_gate() -> None:
    """A failure the baseline answered counts as a failed candidate request: with requests
    all OK in the metrics, the retries alone roll the candidate back."""
    rollout = _rollout(max_error_ratio=0.02)
    settings = Settings(models={"m": {"rollout": rollout.model_dump()}})
    metrics = Metrics()
    controller = RolloutController(settings, metrics, lambda model: [1, 2])
    controller.tick(now=10)
    assert controller.fallback("m", 2) == 1  # running: the candidate falls back
    assert controller.fallback("m", 1) is None  # the baseline has nothing to fall back to
    for _ in range(97):
        metrics.requests.labels("m", "2", "rest", "OK").inc()
    for _ in range(3):
        controller.retried("m", 2, "InternalError: boom")
    controller.retried("m", 7, "a request of an earlier rollout")  # not this candidate
    controller.tick(now=20)
    state = controller.states["m"]
    assert (state.phase, state.weight, state.retried) == ("rolled_back", 0.0, 3)
    assert state.reason == state.last_gate == "error ratio 0.030 > 0.02"
    assert controller.fallback("m", 2) is None  # no rollout in progress any more
    view = controller.view("m")
    assert view is not None and (view.phase, view.step, view.retried) == ("rolled_back", 0, 3)


def test_the_view_tells_the_step_reached_and_the_last_gate() -> None:
    settings = Settings(models={"m": {"rollout": _rollout(max_error_ratio=0.5).model_dump()}})
    metrics = Metrics()
    controller = RolloutController(settings, metrics, lambda model: [1, 2])
    controller.tick(now=10)
    assert controller.view("m").step == 1 and controller.view("m").last_gate == ""
    metrics.requests.labels("m", "2", "rest", "OK").inc()
    controller.tick(now=20)
    view = controller.view("m")
    assert (view.phase, view.step, view.candidate_percent) == ("promoted", 2, 100.0)
    assert view.last_gate == "gates hold" and view.steps == (10.0, 100.0)
    assert controller.view("other") is None
