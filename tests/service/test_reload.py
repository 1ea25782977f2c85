"""The settings file reloads live: a valid change applies, a bad one changes nothing."""

from __future__ import annotations

import logging
from pathlib import Path

import httpx
import pytest

from tests.conftest import ServerThread, reloadable_server
from tests.fixtures import half_plus_two

GOOD = """
models:
  half_plus_two:
    version_policy: all
    version_labels: {stable: %d}
"""


def _reloads(thread: ServerThread, outcome: str) -> float:
    return thread.server.metrics.config_reloads.labels(outcome)._value.get()


def _offset(client: httpx.Client, path: str) -> float:
    response = client.post(path, json={"instances": [[0, 0, 0]]})
    assert response.status_code == 200, response.text
    return response.json()["predictions"][0][0]


@pytest.fixture
def reloading(tmp_path: Path):
    half_plus_two(tmp_path / "models" / "half_plus_two" / "1", offset=1.0)
    half_plus_two(tmp_path / "models" / "half_plus_two" / "2", offset=2.0)
    config = tmp_path / "primer.yaml"
    config.write_text(GOOD % 1)
    thread = reloadable_server(tmp_path / "models", config)
    with httpx.Client(base_url=thread.rest_url, timeout=30) as client:
        yield thread, client, config
    thread.stop()


def test_a_label_change_applies_and_a_bad_file_keeps_the_running_settings(
    reloading, caplog: pytest.LogCaptureFixture
) -> None:
    thread, client, config = reloading
    stable = "/v1/models/half_plus_two/labels/stable:predict"
    assert _offset(client, stable) == 1.0
    config.write_text(GOOD % 2)
    assert thread.run(thread.server.reloader.reload()) is True
    assert _offset(client, stable) == 2.0
    assert _reloads(thread, "applied") == 1

    invalid_before = _reloads(thread, "invalid")
    for broken in (GOOD % 2 + "  nonsense: [", GOOD.replace("%d", '"two"')):
        config.write_text(broken)
        with caplog.at_level(logging.ERROR, logger="service.reload"):
            assert thread.run(thread.server.reloader.reload()) is False
        assert "the running settings stay" in caplog.text
    assert _reloads(thread, "invalid") == invalid_before + 2
    assert _offset(client, stable) == 2.0  # still the last good settings

    config.write_text(GOOD % 2 + "shutdown_timeout_s: 3\n")
    with caplog.at_level(logging.WARNING, logger="service.reload"):
        assert thread.run(thread.server.reloader.reload()) is False
    assert "['shutdown_timeout_s'] changed; they take effect after a restart" in caplog.text
    assert thread.server.settings.shutdown_timeout_s == 30


def test_a_broken_settings_file_at_start_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from service.__main__ import main

    config = tmp_path / "primer.yaml"
    config.write_text("models: [\n")
    assert main(["--config", str(config)]) == 2
    assert "primer-serve: invalid settings:" in capsys.readouterr().err
