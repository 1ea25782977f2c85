"""Feedback joins labels to served predictions: live accuracy equals offline accuracy, and
every bad feedback gets its 4xx and its counter."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
import tensorflow as tf

from contract.model_card import read_model_card
from service.errors import FeedbackExpiredError
from service.evaluation.feedback import Feedback
from service.evaluation_settings import EvaluationSettings
from service.inference.events import Answered
from service.inference.request import InferenceRequest, Timing
from service.metrics import Metrics
from tests.conftest import MNIST_NPZ, SHIPPED_MODELS, ServerThread, make_settings

BATCH = 500


@pytest.fixture(scope="module")
def evaluated(fixture_repository: Path) -> Iterator[ServerThread]:
    settings = make_settings(
        fixture_repository, evaluation={"accuracy_window": 10_000, "feedback_capacity": 20_000}
    )
    thread = ServerThread(settings).start()
    yield thread
    thread.stop()


@pytest.fixture(scope="module")
def client(evaluated: ServerThread) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=evaluated.rest_url, timeout=120) as http:
        yield http


def _predict(client: httpx.Client, rows: np.ndarray, request_id: str) -> np.ndarray:
    response = client.post(
        "/v1/models/mnist_dnn:predict",
        json={"inputs": rows.tolist()},
        headers={"x-request-id": request_id},
    )
    assert response.status_code == 200, response.text
    assert response.headers["x-request-id"] == request_id
    return np.asarray(response.json()["outputs"])


def _metric(evaluated: ServerThread, name: str, **labels: str) -> float:
    value = evaluated.server.metrics.registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


def test_live_accuracy_equals_offline_accuracy_on_the_mnist_test_set(
    evaluated: ServerThread, client: httpx.Client
) -> None:
    data = np.load(MNIST_NPZ)
    images = data["x_test"].astype(np.float32) / 255.0
    labels = data["y_test"].astype(int)
    model = tf.saved_model.load(str(SHIPPED_MODELS / "mnist_dnn" / "1"))
    offline_scores = model.signatures["serving_default"](image=tf.constant(images))
    offline = float(np.mean(np.argmax(next(iter(offline_scores.values())), 1) == labels))
    for start in range(0, len(images), BATCH):
        _predict(client, images[start : start + BATCH], f"mnist-{start}")
    feedback = [
        {"request_id": f"mnist-{start}", "labels": labels[start : start + BATCH].tolist()}
        for start in range(0, len(images), BATCH)
    ]
    response = client.post("/v1/models/mnist_dnn:feedback", json=feedback)
    assert response.status_code == 200, response.text
    live = _metric(evaluated, "primer_live_accuracy", model="mnist_dnn", version="1")
    assert abs(live - offline) <= 1e-6, (live, offline)
    assert _metric(evaluated, "primer_feedback_labelled_total", model="mnist_dnn", version="1") >= (
        10_000
    )
    card = read_model_card(SHIPPED_MODELS / "mnist_dnn" / "1")
    assert card is not None
    floor = _metric(evaluated, "primer_live_accuracy_threshold", model="mnist_dnn", version="1")
    assert floor == pytest.approx(card.provenance["test_accuracy"] - 0.02)
    correct = _metric(evaluated, "primer_feedback_correct_total", model="mnist_dnn", version="1")
    assert correct >= round(offline * 10_000)


def test_a_single_label_by_class_name_or_index_over_v1_and_v2(
    evaluated: ServerThread, client: httpx.Client
) -> None:
    digit = np.load(MNIST_NPZ)["x_test"][:2].astype(np.float32) / 255.0
    scores = _predict(client, digit[:1], "one-by-name")
    predicted = str(int(np.argmax(scores[0])))
    response = client.post(
        "/v1/models/mnist_dnn/versions/1:feedback",
        json={"request_id": "one-by-name", "label": predicted},
    )
    assert response.json() == {"results": [{"request_id": "one-by-name", "correct": True}]}
    scores = _predict(client, digit[1:], "one-by-index")
    wrong = (int(np.argmax(scores[0])) + 1) % 10
    response = client.post(
        "/v2/models/mnist_dnn/feedback", json={"request_id": "one-by-index", "label": wrong}
    )
    assert response.json() == {"results": [{"request_id": "one-by-index", "correct": False}]}


@pytest.mark.parametrize(
    ("body", "status", "reason", "says"),
    [
        ({"request_id": "never-sent", "label": "3"}, 404, "unknown_request", "no request"),
        ({"request_id": "bad-label", "label": "11"}, 400, "invalid_input", "not one of"),
        ({"request_id": "bad-label", "label": 10}, 400, "invalid_input", "0..9"),
        ({"request_id": "bad-label", "labels": ["1", "2"]}, 400, "invalid_input", "1 rows"),
    ],
)
def test_bad_feedback_gets_a_clear_4xx_and_a_count(
    evaluated: ServerThread,
    client: httpx.Client,
    body: dict,
    status: int,
    reason: str,
    says: str,
) -> None:
    _predict(client, np.zeros((1, 28, 28), np.float32), "bad-label")
    before = _metric(evaluated, "primer_feedback_rejected_total", model="mnist_dnn", reason=reason)
    response = client.post("/v1/models/mnist_dnn:feedback", json=body)
    assert response.status_code == status, response.text
    assert says in response.json()["error"]
    after = _metric(evaluated, "primer_feedback_rejected_total", model="mnist_dnn", reason=reason)
    assert after == before + 1


def test_duplicate_and_malformed_feedback(evaluated: ServerThread, client: httpx.Client) -> None:
    _predict(client, np.zeros((1, 28, 28), np.float32), "twice")
    first = client.post("/v1/models/mnist_dnn:feedback", json={"request_id": "twice", "label": 0})
    assert first.status_code == 200
    again = client.post("/v1/models/mnist_dnn:feedback", json={"request_id": "twice", "label": 0})
    assert again.status_code == 409 and "already has its label" in again.json()["error"]
    assert (
        _metric(evaluated, "primer_feedback_rejected_total", model="mnist_dnn", reason="duplicate")
        >= 1
    )
    for bad in ({"label": 1}, {"request_id": "twice"}, [1], {"request_id": "x", "label": 1.5}):
        response = client.post("/v1/models/mnist_dnn:feedback", json=bad)
        assert response.status_code == 400 and "feedback item 0" in response.json()["error"]
    unknown_model = client.post("/v1/models/nope:feedback", json={"request_id": "x", "label": 1})
    assert unknown_model.status_code == 404


def test_feedback_past_the_window_is_expired(fixture_repository: Path) -> None:
    settings = make_settings(fixture_repository, evaluation={"feedback_capacity": 1})
    thread = ServerThread(settings).start()
    try:
        with httpx.Client(base_url=thread.rest_url, timeout=60) as client:
            _predict(client, np.zeros((1, 28, 28), np.float32), "old")
            _predict(client, np.zeros((1, 28, 28), np.float32), "new")
            response = client.post(
                "/v1/models/mnist_dnn:feedback", json={"request_id": "old", "label": "1"}
            )
            assert response.status_code == 410 and "older than" in response.json()["error"]
            assert (
                _metric(
                    thread, "primer_feedback_rejected_total", model="mnist_dnn", reason="expired"
                )
                == 1
            )
    finally:
        thread.stop()


def test_feedback_after_the_time_window_is_expired() -> None:
    now = [100.0]
    metrics = Metrics()
    feedback = Feedback(EvaluationSettings(feedback_window_s=60), metrics, clock=lambda: now[0])
    scores = np.eye(3, dtype=np.float32)[[2]]
    feedback.answered(
        Answered("late", "unit", "m", 1, "serving_default", InferenceRequest("m", {}), {},
                 {"p": scores}, Timing(), 0.0)
    )  # fmt: skip
    now[0] += 61
    with pytest.raises(FeedbackExpiredError, match="more than 60 s ago"):
        feedback.label("m", "late", ["c"], ["a", "b", "c"])
    with pytest.raises(FeedbackExpiredError):  # and it stays expired, not unknown
        feedback.label("m", "late", ["c"], ["a", "b", "c"])
    rejected = metrics.registry.get_sample_value(
        "primer_feedback_rejected_total", {"model": "m", "reason": "expired"}
    )
    assert rejected == 2
