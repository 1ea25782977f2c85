"""Canary rollouts: move a model's traffic to a candidate step by step while its gates hold.

Per model with a ``rollout`` setting, every ``interval_s`` the controller reads what the
candidate and the baseline served since the last look (client requests only, from the
metric catalogue) and checks the gates:

* ``max_error_ratio`` — the candidate's share of failed requests;
* ``max_p99_ratio`` — the candidate's p99 latency over the baseline's (histogram buckets);
* ``min_agreement`` — top-1 agreement of the candidate's answers with the baseline's, from
  the live comparison the shadow mirror runs during a rollout.

While every gate holds the candidate's weight moves to the next step (an interval in which
the candidate served nothing, or had no answer compared when ``min_agreement`` is set,
leaves it where it is); at the last step (100) the rollout is
``promoted``. As soon as one gate fails the weight goes back to 0 (``rolled_back``) and stays
there until the rollout settings change. The weight shows in ``primer_rollout_step`` and
``primer_traffic_weight``, the whole state in ``view`` (the experiments endpoint and the
console), and every move is logged.

While a rollout is in progress (running or paused) a routed request that the candidate fails
with a server error is answered by the baseline (``fallback``): the client sees no failure,
and the failure still counts against the candidate's ``max_error_ratio`` (``retried``).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field

from service.config import Settings
from service.experiment_settings import RolloutSettings
from service.metrics import Metrics
from service.views import RolloutView

logger = logging.getLogger(__name__)
SHADOW_PROTOCOL = "shadow"
FROZEN = ("promoted", "rolled_back", "aborted", "paused")
"""Phases a tick leaves alone."""
ACTIONS = ("pause", "resume", "abort")
IN_PROGRESS = ("running", "paused")
"""Phases in which a candidate's server errors are retried on the baseline."""
TICK_S = 0.1
"""How often rollouts are looked at (each moves once per its own ``interval_s``)."""


@dataclass
class Counts:
    """Cumulative client-request counts of one version at one moment."""

    requests: float = 0.0
    errors: float = 0.0
    buckets: dict[float, float] = field(default_factory=dict)
    compared: float = 0.0
    agreed: float = 0.0

    def minus(self, before: Counts) -> Counts:
        return Counts(
            self.requests - before.requests,
            self.errors - before.errors,
            {le: n - before.buckets.get(le, 0.0) for le, n in self.buckets.items()},
            self.compared - before.compared,
            self.agreed - before.agreed,
        )

    def p99(self) -> float:
        """The upper bound of the bucket holding the 99th percentile (nan when empty)."""
        total = self.buckets.get(math.inf, 0.0)
        if total <= 0:
            return math.nan
        for le in sorted(self.buckets):
            if self.buckets[le] >= 0.99 * total:
                return le
        return math.inf


@dataclass
class RolloutState:
    """Where one model's rollout is."""

    settings: RolloutSettings
    weight: float = 0.0
    phase: str = "waiting"
    """waiting (candidate not AVAILABLE) | running | paused | promoted | rolled_back |
    aborted."""
    reason: str = ""
    last_gate: str = ""
    """The last gate check's outcome: 'gates hold', or why one failed ('' before the first)."""
    retried: int = 0
    """Routed requests the candidate failed with a server error that the baseline answered."""
    last_tick: float = -math.inf
    """When the rollout last moved or looked (``time.monotonic``); a new one looks at once,
    however long the machine has been up."""
    candidate_seen: Counts = field(default_factory=Counts)
    baseline_seen: Counts = field(default_factory=Counts)
    history: list[tuple[str, float]] = field(default_factory=list)
    """Every (phase, weight) the rollout took, in order."""


def snapshot(metrics: Metrics, model: str, version: int, baseline: int, retried: int = 0) -> Counts:
    """Cumulative counts of ``version``'s client requests, and its comparisons to baseline.

    ``retried`` requests (failed by ``version``, answered by the baseline) count as its
    failed requests: the client never saw them fail, the gate must.
    """
    counts = Counts(requests=float(retried), errors=float(retried))
    label = str(version)
    for family in (*metrics.requests.collect(), *metrics.request_duration.collect()):
        for sample in family.samples:
            labels = sample.labels
            if labels.get("model") != model or labels.get("version") != label:
                continue
            if labels.get("protocol") == SHADOW_PROTOCOL:
                continue
            if sample.name.endswith("_total") and "code" in labels:
                counts.requests += sample.value
                counts.errors += sample.value if labels["code"] != "OK" else 0.0
            elif sample.name.endswith("_bucket"):
                le = float(labels["le"])
                counts.buckets[le] = counts.buckets.get(le, 0.0) + sample.value
    pair = (model, label, str(baseline))
    counts.compared = metrics.shadow_rows.labels(*pair)._value.get()
    counts.agreed = metrics.shadow_agreements.labels(*pair)._value.get()
    return counts


def failed_gate(settings: RolloutSettings, candidate: Counts, baseline: Counts) -> str:
    """Why the interval fails a gate ('' when every gate holds)."""
    gates = settings.gates
    if gates.max_error_ratio is not None and candidate.requests > 0:
        ratio = candidate.errors / candidate.requests
        if ratio > gates.max_error_ratio:
            return f"error ratio {ratio:.3f} > {gates.max_error_ratio}"
    if gates.max_p99_ratio is not None:
        ratio = candidate.p99() / baseline.p99()
        if not math.isnan(ratio) and ratio > gates.max_p99_ratio:
            return f"p99 ratio {ratio:.2f} > {gates.max_p99_ratio}"
    if gates.min_agreement is not None and candidate.compared > 0:
        agreement = candidate.agreed / candidate.compared
        if agreement < gates.min_agreement:
            return f"agreement {agreement:.3f} < {gates.min_agreement}"
    return ""


class RolloutController:
    """Runs every model's rollout (see the module docstring).

    Args:
        settings: the running settings (reloads apply at the next tick).
        metrics: the metric catalogue (read for the gates, written for the state).
        available: the AVAILABLE versions of a model.
    """

    def __init__(
        self, settings: Settings, metrics: Metrics, available: Callable[[str], Collection[int]]
    ) -> None:
        self._settings = settings
        self._metrics = metrics
        self._available = available
        self.states: dict[str, RolloutState] = {}

    def weights(self, model: str) -> dict[int, float] | None:
        """The split a rollout imposes on ``model`` (None when it has none)."""
        state = self.states.get(model)
        if state is None:
            return None
        rollout = state.settings
        return {rollout.baseline: 100.0 - state.weight, rollout.candidate: state.weight}

    def fallback(self, model: str, version: int) -> int | None:
        """The version that answers when ``version``, routed by a rollout in progress,
        fails with a server error: the baseline when ``version`` is the candidate."""
        state = self.states.get(model)
        if state is None or state.phase not in IN_PROGRESS:
            return None
        return state.settings.baseline if version == state.settings.candidate else None

    def retried(self, model: str, candidate: int, error: str) -> None:
        """Count a failure of ``candidate`` the baseline answered (``fallback``) against
        its gate."""
        state = self.states.get(model)
        if state is None or state.settings.candidate != candidate:
            return  # the rollout changed while the request ran: nothing left to gate
        state.retried += 1
        logger.warning(
            "rollout of %s:%d: a request the candidate failed (%s) was answered by %d",
            model,
            state.settings.candidate,
            error[:200],
            state.settings.baseline,
        )

    def view(self, model: str) -> RolloutView | None:
        """Where the rollout of ``model`` is (None when it has none)."""
        state = self.states.get(model)
        if state is None:
            return None
        rollout = state.settings
        return RolloutView(
            candidate=rollout.candidate,
            baseline=rollout.baseline,
            phase=state.phase,
            candidate_percent=state.weight,
            steps=tuple(rollout.steps),
            step=sum(1 for step in rollout.steps if step <= state.weight),
            interval_s=rollout.interval_s,
            reason=state.reason,
            last_gate=state.last_gate,
            retried=state.retried,
        )

    async def run(self) -> None:
        """Tick every ``TICK_S`` until cancelled."""
        while True:
            await asyncio.sleep(TICK_S)
            try:
                self.tick()
            except Exception:
                logger.exception("rollout step failed")

    def tick(self, now: float | None = None) -> None:
        """Start, advance or roll back every rollout whose interval has passed."""
        now = time.monotonic() if now is None else now
        wanted = {
            name: model.rollout
            for name, model in self._settings.models.items()
            if model.rollout is not None
        }
        for model in set(self.states) - set(wanted):
            self._metrics.rollout_step.remove(model)
            del self.states[model]
        for model, rollout in wanted.items():
            state = self.states.get(model)
            if state is None or state.settings != rollout:
                state = self.states[model] = RolloutState(rollout)
                self._publish(model, state, "configured")
            if state.phase in FROZEN:
                continue
            if state.phase != "waiting" and now - state.last_tick < rollout.interval_s:
                continue  # a waiting rollout starts on the first tick its candidate serves
            self._step(model, state, now)

    def control(self, model: str, action: str) -> RolloutState:
        """Pause, resume or abort (weight 0, for good) the rollout of ``model``.

        Raises:
            KeyError: the model has no rollout.
            ValueError: an unknown action, or one the rollout's phase does not allow.
        """
        if action not in ACTIONS:
            raise ValueError(f"rollout action must be one of {list(ACTIONS)}, got {action!r}")
        state = self.states[model]
        allowed = {"pause": ("running", "waiting"), "resume": ("paused",), "abort": None}[action]
        if allowed is not None and state.phase not in allowed:
            raise ValueError(f"cannot {action} a rollout that is {state.phase}")
        if action == "pause":
            state.phase = "paused"
        elif action == "resume":
            state.phase, state.last_tick = "running", time.monotonic()
        else:
            state.phase, state.weight, state.reason = "aborted", 0.0, "aborted by request"
        self._publish(model, state, f"{action} by request")
        return state

    def _step(self, model: str, state: RolloutState, now: float) -> None:
        rollout = state.settings
        state.last_tick = now
        candidate = snapshot(
            self._metrics, model, rollout.candidate, rollout.baseline, state.retried
        )
        baseline = snapshot(self._metrics, model, rollout.baseline, rollout.candidate)
        if state.phase == "waiting":
            if rollout.candidate not in self._available(model):
                return
            state.phase = "running"
            state.weight = float(rollout.steps[0])
        else:
            window = candidate.minus(state.candidate_seen)
            reason = failed_gate(rollout, window, baseline.minus(state.baseline_seen))
            state.last_gate = reason or "gates hold"
            if reason:
                state.weight, state.phase, state.reason = 0.0, "rolled_back", reason
            elif window.requests > 0 and (
                rollout.gates.min_agreement is None or window.compared > 0
            ):
                later = [s for s in rollout.steps if s > state.weight]
                state.weight = float(later[0]) if later else state.weight
                if state.weight >= 100:
                    state.phase = "promoted"
        state.candidate_seen, state.baseline_seen = candidate, baseline
        self._publish(model, state, state.reason or "gates hold")

    def _publish(self, model: str, state: RolloutState, why: str) -> None:
        self._metrics.rollout_step.labels(model).set(state.weight)
        state.history.append((state.phase, state.weight))
        steps = state.settings.steps
        logger.info(
            "rollout of %s:%d: %s at %g%% (step %d of %d, %s)",
            model,
            state.settings.candidate,
            state.phase,
            state.weight,
            sum(1 for step in steps if step <= state.weight),
            len(steps),
            why,
        )
