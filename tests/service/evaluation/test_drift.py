"""Drift against the shipped mnist_dnn's reference profile: clean digits raise no alert,
inverted or noised digits do within 500 requests, and the OOD score tells noise from digits."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from contract.reference_profile import ood_score
from service.inference.request import InferenceRequest
from tests.conftest import MNIST_NPZ, ServerThread, make_settings

ALERT_PSI = 0.25  # deploy/prometheus/alerts.yml: PrimerInputDrift
STEP = 50


@pytest.fixture(scope="module")
def monitored(fixture_repository: Path) -> Iterator[ServerThread]:
    thread = ServerThread(make_settings(fixture_repository)).start()
    yield thread
    thread.stop()


@pytest.fixture(scope="module")
def digits() -> np.ndarray:
    return np.load(MNIST_NPZ)["x_test"].astype(np.float32) / 255.0


def _serve_one_by_one(server: ServerThread, images: np.ndarray) -> np.ndarray:
    """One request per image, all in flight at once (the batcher batches them)."""

    async def one(image: np.ndarray) -> np.ndarray:
        with server.server.core.scope("drift_test", "mnist_dnn") as scope:
            request = InferenceRequest("mnist_dnn", {"image": image[None]})
            outputs, _ = await scope.infer(request, lambda result: result.outputs)
            return next(iter(outputs.values()))[0]

    async def every() -> list[np.ndarray]:
        return await asyncio.gather(*(one(image) for image in images))

    answers = np.stack(server.run(every()))
    assert server.server.side_work.flush(), "the drift histograms were not computed"
    return answers


def _psi(server: ServerThread, feature: str = "pixels") -> float:
    value = server.server.metrics.registry.get_sample_value(
        "primer_drift_psi", {"model": "mnist_dnn", "version": "1", "feature": feature}
    )
    assert value is not None, "no PSI exported"
    return value


def _requests_until_alert(server: ServerThread, images: np.ndarray) -> int | None:
    for start in range(0, len(images), STEP):
        _serve_one_by_one(server, images[start : start + STEP])
        if start + STEP >= 100 and _psi(server) > ALERT_PSI:
            return start + STEP
    return None


def _highest_psi(server: ServerThread, images: np.ndarray) -> dict[str, float]:
    highest = dict.fromkeys(("pixels", "classes", "confidence"), 0.0)
    for start in range(0, len(images), STEP):
        _serve_one_by_one(server, images[start : start + STEP])
        if start + STEP >= 100:
            highest = {name: max(value, _psi(server, name)) for name, value in highest.items()}
    return highest


def test_clean_digits_raise_no_alert_and_shifted_ones_do_within_500_requests(
    monitored: ServerThread, digits: np.ndarray
) -> None:
    clean = _highest_psi(monitored, digits[:2000])
    assert max(clean.values()) < ALERT_PSI, clean
    inverted = 1.0 - digits[2000:2500]
    assert (_requests_until_alert(monitored, inverted) or 10**9) <= 500
    recovered = _highest_psi(monitored, digits[2500:3000])  # the window slides back
    assert _psi(monitored) < ALERT_PSI, recovered
    noise = np.random.default_rng(7).normal(0.0, 0.35, digits[3000:3500].shape)
    noised = np.clip(digits[3000:3500] + noise, 0.0, 1.0).astype(np.float32)
    assert (_requests_until_alert(monitored, noised) or 10**9) <= 500


def _serve_in_steps(server: ServerThread, images: np.ndarray) -> np.ndarray:
    return np.concatenate(
        [_serve_one_by_one(server, images[i : i + STEP]) for i in range(0, len(images), STEP)]
    )


def _auroc(positives: np.ndarray, negatives: np.ndarray) -> float:
    """Probability that a positive scores above a negative (ties count half)."""
    above = (positives[:, None] > negatives[None, :]).mean()
    ties = (positives[:, None] == negatives[None, :]).mean()
    return float(above + ties / 2)


def test_the_ood_score_separates_noise_from_digits(
    monitored: ServerThread, digits: np.ndarray
) -> None:
    noise = np.random.default_rng(11).random((1000, 28, 28), dtype=np.float32)
    before = monitored.server.metrics.registry.get_sample_value(
        "primer_ood_score_count", {"model": "mnist_dnn", "version": "1"}
    )
    digit_scores = ood_score(_serve_in_steps(monitored, digits[5000:6000]))
    noise_scores = ood_score(_serve_in_steps(monitored, noise))
    auroc = _auroc(noise_scores, digit_scores)
    assert auroc >= 0.9, auroc
    after = monitored.server.metrics.registry.get_sample_value(
        "primer_ood_score_count", {"model": "mnist_dnn", "version": "1"}
    )
    assert after - (before or 0) == 2000


def test_a_model_served_from_its_own_folder_reads_its_profile_there(
    fixture_repository: Path, tmp_path: Path, digits: np.ndarray
) -> None:
    """``model_paths`` (TF Serving's model config list): the profile is not under the base."""
    empty_base = tmp_path / "empty"
    empty_base.mkdir()
    settings = make_settings(
        empty_base, model_paths={"mnist_dnn": str(fixture_repository / "mnist_dnn")}
    )
    server = ServerThread(settings).start()
    try:
        _serve_in_steps(server, digits[:100])
        assert _psi(server) < ALERT_PSI
    finally:
        server.stop()
