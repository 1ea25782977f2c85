"""The evaluation settings follow a reload as the traffic settings do: payload-log rate,
seed and redaction, the feedback's accuracy window and alert margin apply to the next
requests; a bad value is refused with a message naming it, and the running settings stay;
the payload log's folder needs a restart and says so."""

from __future__ import annotations

import functools
import logging
import random
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import orjson
import pytest

from tests.conftest import MNIST_NPZ, SHIPPED_MODELS, reloadable_server

SETTINGS = """
evaluation:
  payload_log_dir: {log}
  payload_log_rate: {rate}
  payload_log_seed: {seed}
  redact: {redact}
  accuracy_window: {window}
  accuracy_alert_margin: {margin}
"""
BAD = [
    ("payload_log_rate: 1.5", "payload_log_rate", "less than or equal to 1"),
    ("redact: everything", "redact", "'none' or 'digest-only'"),
    ("payload_log_rates: {mnist_dnn: -0.5}", "payload_log_rates", "expected 0..1"),
    ("feedback_window_s: 0", "feedback_window_s", "greater than 0"),
    ("accuracy_window: 0", "accuracy_window", "greater than or equal to 1"),
    ("drift_windw: 10", "drift_windw", "Extra inputs are not permitted"),
]


@functools.cache
def _digits() -> dict[str, np.ndarray]:
    with np.load(MNIST_NPZ) as data:
        return {"x_test": data["x_test"][:200] / 255.0, "y_test": data["y_test"][:200]}


class Evaluated:
    """A reloadable server over the shipped mnist_dnn, its settings file and a client."""

    def __init__(self, base: Path) -> None:
        shutil.copytree(SHIPPED_MODELS / "mnist_dnn", base / "models" / "mnist_dnn")
        self.log = base / "log"
        self.config = base / "primer.yaml"
        self.values = {
            "log": str(self.log),
            "rate": 0.0,
            "seed": 7,
            "redact": "none",
            "window": 100,
            "margin": 0.02,
        }
        self.write()
        self.thread = reloadable_server(base / "models", self.config)
        self.client = httpx.Client(base_url=self.thread.rest_url, timeout=60)
        self.sent = 0

    def write(self, extra: str = "", **values: object) -> None:
        self.values.update(values)
        text = SETTINGS.format(**self.values)
        self.config.write_text(text + (f"  {extra}\n" if extra else ""))

    def reload(self) -> bool:
        return self.thread.run(self.thread.server.reloader.reload())

    def send(self, count: int) -> list[str]:
        """``count`` single-digit predicts; their request ids."""
        ids = []
        for _ in range(count):
            number = self.sent
            self.sent += 1
            response = self.client.post(
                "/v1/models/mnist_dnn:predict",
                json={"instances": _digits()["x_test"][number : number + 1].tolist()},
                headers={"x-request-id": f"r{number}"},
            )
            assert response.status_code == 200, response.text
            ids.append(f"r{number}")
        return ids

    def records(self) -> list[dict]:
        log = self.thread.server.payload_log
        log.flush()
        return [
            orjson.loads(line) for path in log.files() for line in path.read_bytes().splitlines()
        ]

    def metric(self, name: str) -> float | None:
        labels = {"model": "mnist_dnn", "version": "1"}
        return self.thread.server.metrics.registry.get_sample_value(name, labels)


@pytest.fixture
def evaluated(tmp_path: Path) -> Iterator[Evaluated]:
    served = Evaluated(tmp_path)
    yield served
    served.client.close()
    served.thread.stop()


def _expected(seed: int, rate: float, ids: list[str]) -> list[str]:
    sampler = random.Random(seed)
    return [request_id for request_id in ids if sampler.random() < rate]


def test_rate_seed_and_redaction_follow_a_reload(evaluated: Evaluated) -> None:
    assert evaluated.send(20) and evaluated.records() == []  # rate 0: nothing logged
    evaluated.write(rate=0.5, seed=11)
    assert evaluated.reload() is True
    logged = _expected(11, 0.5, evaluated.send(40))
    records = evaluated.records()
    assert [r["request_id"] for r in records] == logged and logged
    assert all("values" in next(iter(r["inputs"].values())) for r in records)

    evaluated.write(redact="digest-only", seed=3)  # a new seed starts the sampler over
    assert evaluated.reload() is True
    later = _expected(3, 0.5, evaluated.send(40))
    records = evaluated.records()[len(logged) :]
    assert [r["request_id"] for r in records] == later and later
    assert all(set(next(iter(r["inputs"].values()))) == {"sha256", "shape"} for r in records)


@pytest.mark.parametrize(("line", "field", "says"), BAD)
def test_a_bad_evaluation_value_is_refused_and_the_running_settings_stay(
    evaluated: Evaluated, caplog: pytest.LogCaptureFixture, line: str, field: str, says: str
) -> None:
    evaluated.write(rate=0.5, seed=5)
    assert evaluated.reload() is True
    running = evaluated.thread.server.settings.evaluation.model_copy()
    evaluated.write(extra=line, rate=1.0)  # the good change beside it is not applied either
    with caplog.at_level(logging.ERROR, logger="service.reload"):
        assert evaluated.reload() is False
    assert "the running settings stay" in caplog.text
    assert field in caplog.text and says in caplog.text
    assert evaluated.thread.server.settings.evaluation == running
    logged = _expected(5, 0.5, evaluated.send(30))  # still served, still sampled at 0.5
    assert [r["request_id"] for r in evaluated.records()] == logged


def test_the_log_folder_needs_a_restart_and_says_so(
    evaluated: Evaluated, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    evaluated.write(log=str(tmp_path / "elsewhere"), rate=1.0)
    with caplog.at_level(logging.WARNING, logger="service.reload"):
        assert evaluated.reload() is True  # the rate applies
    assert "['evaluation.payload_log_dir'] changed; they take effect after a restart" in (
        caplog.text
    )
    assert evaluated.thread.server.settings.evaluation.payload_log_dir == str(evaluated.log)
    ids = evaluated.send(5)
    assert [r["request_id"] for r in evaluated.records()] == ids  # still the first folder


def test_accuracy_window_and_alert_margin_follow_a_reload(evaluated: Evaluated) -> None:
    ids = evaluated.send(60)
    truth = _digits()["y_test"][:60]
    wrong = {5, 40, 55}  # labels given wrong on purpose, so the two windows differ
    labels = [
        {"request_id": rid, "label": str((int(y) + 1) % 10 if n in wrong else int(y))}
        for n, (rid, y) in enumerate(zip(ids, truth, strict=True))
    ]
    answer = evaluated.client.post("/v1/models/mnist_dnn:feedback", json=labels)
    assert answer.status_code == 200, answer.text
    correct = [result["correct"] for result in answer.json()["results"]]
    card = orjson.loads((SHIPPED_MODELS / "mnist_dnn/1/assets.extra/model.json").read_bytes())
    test_accuracy = card["provenance"]["test_accuracy"]
    assert evaluated.metric("primer_live_accuracy") == pytest.approx(np.mean(correct))
    assert evaluated.metric("primer_live_accuracy_threshold") == pytest.approx(test_accuracy - 0.02)

    evaluated.write(window=10, margin=0.1)
    assert evaluated.reload() is True
    assert np.mean(correct[-10:]) != np.mean(correct)
    assert evaluated.metric("primer_live_accuracy") == pytest.approx(np.mean(correct[-10:]))
    assert evaluated.metric("primer_live_accuracy_threshold") == pytest.approx(test_accuracy - 0.1)
