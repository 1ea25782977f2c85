"""Continuous-evaluation settings (the ``evaluation`` section of the server settings)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, field_validator


class EvaluationSettings(BaseModel):
    """Continuous evaluation: the sampled payload log and ground-truth feedback."""

    model_config = {"extra": "forbid"}

    payload_log_dir: str | None = None
    """Folder the payload log writes JSONL files into; off when unset."""
    payload_log_rate: float = Field(0.1, ge=0, le=1)
    """Share of answered requests logged, for models without their own rate (10%)."""
    payload_log_rates: dict[str, float] = Field(default_factory=dict)
    """Per-model sample rates (0..1), e.g. {'mnist_dnn': 0.1}."""
    payload_log_seed: int | None = None
    """Seed of the sampler (one generator per model): the same traffic logs the same requests."""
    redact: Literal["none", "digest-only"] = "none"
    """``digest-only`` keeps only a SHA-256 digest of each input, never the input itself."""
    max_input_bytes: int = Field(65536, ge=0)
    """Inputs larger than this are logged by digest only."""
    max_file_bytes: int = Field(64 * 1024 * 1024, ge=1024)
    """A log file rotates once it passes this size."""
    max_files: int = Field(10, ge=1)
    """Rotated files kept (retention); older ones are deleted."""
    queue_size: int = Field(1024, ge=1)
    """Records waiting for the writer; beyond it records are dropped and counted."""
    max_inflight: int = Field(4, ge=1)
    """Log records and drift histograms are built only while fewer client requests are in
    flight; meanwhile they wait, and past ``queue_size`` they are shed (and counted)."""
    feedback_window_s: float = Field(3600.0, gt=0)
    """How long after its answer a request still takes feedback (410 after)."""
    feedback_capacity: int = Field(10_000, ge=1)
    """Predicted rows remembered for feedback, over the most recent requests (the oldest
    requests are forgotten first; feedback on them gets 410). Each costs about 0.5 KiB:
    the default holds the store to a few MiB, which the sustained-load RSS test checks."""
    accuracy_window: int = Field(10_000, ge=1)
    """Labelled rows the live accuracy is computed over (a sliding window per version)."""

    accuracy_alert_margin: float = Field(0.02, ge=0, le=1)
    """The live-accuracy alert fires below model.json's test accuracy minus this margin
    (exported as ``primer_live_accuracy_threshold``)."""
    drift_window: int = Field(500, ge=1)
    """Rows the live drift histograms cover (a sliding window per version)."""
    drift_min_rows: int = Field(100, ge=1)
    """Rows a window needs before its PSI is exported (a few rows say nothing)."""

    @field_validator("payload_log_rates")
    @classmethod
    def _rates_in_range(cls, rates: dict[str, float]) -> dict[str, float]:
        for model, rate in rates.items():
            if not 0 <= rate <= 1:
                raise ValueError(f"payload_log_rates[{model!r}] is {rate}; expected 0..1")
        return rates

    def rate_for(self, model: str) -> float:
        """The payload-log sample rate of a model."""
        return self.payload_log_rates.get(model, self.payload_log_rate)
