"""Settings of a model's experiments: shadow traffic and canary rollouts (``docs/experiments.md``).

Part of ``ModelSettings`` (``service/config.py``); kept apart so each module stays one job.
"""

from __future__ import annotations

from pydantic import BaseModel, Field, model_validator


class ShadowSettings(BaseModel):
    """Shadow traffic: mirror a fraction of answered requests to another version."""

    version: int = Field(ge=1)
    """The version that receives the mirrors (never the one that answered)."""
    fraction: float = Field(1.0, gt=0, le=1)
    """Share of answered requests mirrored."""
    max_inflight: int = Field(4, ge=1)
    """A mirror runs only while fewer client requests are in flight (else it is dropped)."""


class RolloutGates(BaseModel):
    """What a rollout candidate must hold each interval to move on (None: not checked)."""

    max_error_ratio: float | None = Field(None, ge=0, le=1)
    """Highest share of the candidate's client requests that may fail."""
    max_p99_ratio: float | None = Field(None, gt=0)
    """Highest candidate p99 latency over the baseline's p99."""
    min_agreement: float | None = Field(None, ge=0, le=1)
    """Lowest top-1 agreement of the candidate's answers with the baseline's."""


class RolloutSettings(BaseModel):
    """A canary rollout: traffic moves from baseline to candidate while the gates hold."""

    candidate: int = Field(ge=1)
    """The version rolled out."""
    baseline: int = Field(ge=1)
    """The version that serves the rest of the traffic."""
    steps: list[float] = Field(default_factory=lambda: [5.0, 25.0, 50.0, 100.0])
    """The candidate's successive percentages; the last must be 100."""
    interval_s: float = Field(60.0, gt=0)
    """Time at each step before the gates are checked."""
    gates: RolloutGates = Field(default_factory=RolloutGates)
    """The gates checked at the end of each interval."""

    @model_validator(mode="after")
    def _check(self) -> RolloutSettings:
        if self.candidate == self.baseline:
            raise ValueError("rollout candidate and baseline must be different versions")
        steps = self.steps
        if not steps or steps != sorted(set(steps)) or steps[0] <= 0 or steps[-1] != 100:
            raise ValueError(f"rollout steps must rise from above 0 to 100, got {steps}")
        return self
