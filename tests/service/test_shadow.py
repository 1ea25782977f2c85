"""Shadow traffic on a served model: clients see only the primary (byte for byte), a shadow
that fails every request fails none of theirs, and the agreement metric is the offline one."""

from __future__ import annotations

from pathlib import Path

import httpx
import numpy as np
import pytest

from service.config import Settings
from tests import fixtures
from tests.conftest import ServerThread, reloadable_server

CONFIG = """
models:
  half_plus_two:
    version_policy: all
    traffic: {"1": 1}
%s"""
SHADOW = "    shadow: {version: %d}\n"
PREDICT = "/v1/models/half_plus_two:predict"


@pytest.fixture(scope="module")
def shadowed(tmp_path_factory: pytest.TempPathFactory):
    base = tmp_path_factory.mktemp("shadow")
    fixtures.shadowed(base / "models" / "half_plus_two")
    config = base / "primer.yaml"
    config.write_text(CONFIG % "")
    thread = reloadable_server(base / "models", config)
    with httpx.Client(base_url=thread.rest_url, timeout=30) as client:
        yield thread, client, config
    thread.stop()


def _batches() -> list[list[list[float]]]:
    """60 requests of 1-3 rows; one row in four has equal values (a top-1 tie)."""
    rng = np.random.default_rng(19)
    batches = []
    for index in range(60):
        rows = rng.normal(size=(1 + index % 3, 3)).round(3)
        if index % 4 == 0:
            rows[0] = rows[0, 0]
        batches.append(rows.tolist())
    return batches


def _configure(thread: ServerThread, config: Path, shadow: int | None) -> None:
    config.write_text(CONFIG % ("" if shadow is None else SHADOW % shadow))
    assert thread.run(thread.server.reloader.reload()) is True


def _answers(thread: ServerThread, client: httpx.Client, path: str = PREDICT) -> list[bytes]:
    bodies = []
    for rows in _batches():
        response = client.post(path, json={"instances": rows})
        assert response.status_code == 200, response.text
        bodies.append(response.content)
    thread.run(thread.server.shadow.drain())
    return bodies


def _metric(metric, *labels: str) -> float:
    return metric.labels(*labels)._value.get()


def test_a_shadow_is_invisible_to_clients_and_its_agreement_is_the_offline_one(
    shadowed,
) -> None:
    thread, client, config = shadowed
    metrics = thread.server.metrics
    alone = _answers(thread, client)
    _configure(thread, config, 3)
    try:
        with_shadow = _answers(thread, client)
    finally:
        _configure(thread, config, None)
    assert with_shadow == alone  # byte-identical to the primary alone

    primary = np.concatenate(
        [
            np.array(b)
            for b in _decode(
                _answers(thread, client, "/v1/models/half_plus_two/versions/1:predict")
            )
        ]
    )
    shadow = np.concatenate(
        [
            np.array(b)
            for b in _decode(
                _answers(thread, client, "/v1/models/half_plus_two/versions/3:predict")
            )
        ]
    )
    offline_agreement = float(np.mean(primary.argmax(axis=1) == shadow.argmax(axis=1)))
    offline_diff = float(np.abs(primary - shadow).mean(axis=1).mean())
    assert 0 < offline_agreement < 1
    pair = ("half_plus_two", "1", "3")
    assert _metric(metrics.shadow_requests, *pair, "ok") == 60
    assert _metric(metrics.shadow_rows, *pair) == len(primary)
    assert _metric(metrics.shadow_agreement, *pair) == pytest.approx(offline_agreement)
    assert _metric(metrics.shadow_mean_abs_diff, *pair) == pytest.approx(offline_diff, rel=1e-5)
    assert _metric(metrics.requests, "half_plus_two", "3", "shadow", "OK") == 60


def test_a_shadow_that_fails_every_request_fails_no_client(shadowed) -> None:
    thread, client, config = shadowed
    alone = _answers(thread, client)
    _configure(thread, config, 4)
    try:
        assert _answers(thread, client) == alone  # every answer 200 and unchanged
    finally:
        _configure(thread, config, None)
    metrics = thread.server.metrics
    assert _metric(metrics.shadow_requests, "half_plus_two", "1", "4", "error") == 60
    assert _metric(metrics.shadow_requests, "half_plus_two", "1", "4", "ok") == 0


def test_a_much_slower_shadow_fails_no_client_and_changes_no_answer(shadowed) -> None:
    thread, client, config = shadowed
    alone = _answers(thread, client)
    _configure(thread, config, 5)
    try:
        assert _answers(thread, client) == alone
    finally:
        _configure(thread, config, None)
    metrics = thread.server.metrics
    pair = ("half_plus_two", "1", "5")
    ran = _metric(metrics.shadow_requests, *pair, "ok")
    assert ran + _metric(metrics.shadow_requests, *pair, "dropped") == 60
    assert ran > 0 and _metric(metrics.shadow_requests, *pair, "error") == 0
    assert _metric(metrics.shadow_agreement, *pair) == 1.0  # the same function, only slower


def test_a_shadow_that_is_also_a_traffic_arm_is_refused(tmp_path: Path) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text(CONFIG % (SHADOW % 1))
    with pytest.raises(ValueError, match="shadow version 1 is also a traffic arm"):
        Settings.load(config)


def _decode(bodies: list[bytes]) -> list[list[list[float]]]:
    import json

    return [json.loads(body)["predictions"] for body in bodies]
