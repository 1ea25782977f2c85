"""Structured logs: JSON lines, escaping of client strings, request ids, the access log."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from types import SimpleNamespace

import httpx
import pytest

from service.logging_setup import (
    ACCESS_LOGGER,
    REQUEST_ID,
    JsonFormatter,
    TextFormatter,
    configure_logging,
    escape,
    log_access,
)
from tests.conftest import ServerThread
from tests.suites.observability.helpers import instances_for

HOSTILE = "evil\x1b[31m\u202egnp.exe\nFAKE 200 OK\x00"
"""A model name with an ANSI escape, an RTL override, a newline and a NUL."""


def record(message: str, *args: object, **extra: object) -> logging.LogRecord:
    rec = logging.LogRecord("primer.test", logging.INFO, __file__, 1, message, args, None)
    rec.__dict__.update(extra)
    return rec


def assert_clean(line: str) -> None:
    assert "\n" not in line.rstrip("\n")
    assert all(c.isprintable() for c in line.rstrip("\n")), repr(line)


def test_escape_writes_invisible_characters_as_escapes() -> None:
    assert escape("mnist_dnn") == "mnist_dnn"
    assert escape("café model") == "café model"
    assert escape(HOSTILE) == "evil\\x1b[31m\\u202egnp.exe\\x0aFAKE 200 OK\\x00"
    assert escape("a\u200bb\u2066c\u2028") == "a\\u200bb\\u2066c\\u2028"


def test_text_formatter_escapes_messages_and_adds_request_id() -> None:
    line = TextFormatter().format(record("unknown model %s", HOSTILE, request_id="rid-1"))
    assert_clean(line)
    assert "[rid-1]: unknown model evil\\x1b[31m\\u202egnp.exe\\x0aFAKE" in line


def test_text_formatter_keeps_traceback_lines_but_escapes_them() -> None:
    try:
        raise ValueError(HOSTILE)
    except ValueError:
        rec = logging.LogRecord("t", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())
    text = TextFormatter().format(rec)
    assert "Traceback (most recent call last):" in text
    assert all(line.isprintable() for line in text.split("\n"))


def test_json_formatter_writes_one_parseable_ascii_line() -> None:
    line = JsonFormatter().format(
        record("unknown model %s", HOSTILE, request_id="rid-2", user="x\u202ey")
    )
    assert_clean(line)
    assert line.isascii()
    entry = json.loads(line)
    assert entry["message"] == f"unknown model {HOSTILE}"
    assert entry["request_id"] == "rid-2"
    assert entry["level"] == "INFO" and entry["logger"] == "primer.test"
    assert entry["user"] == "x\u202ey"
    assert entry["ts"].endswith("Z")


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    access_level = logging.getLogger(ACCESS_LOGGER).level
    yield
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)
    logging.getLogger(ACCESS_LOGGER).setLevel(access_level)


@pytest.mark.parametrize("log_json", [True, False])
def test_configure_logging_access_lines(log_json: bool, restore_logging: None) -> None:
    stream = io.StringIO()
    settings = SimpleNamespace(log_level="WARNING", log_json=log_json, access_log=True)
    configure_logging(settings, stream)
    token = REQUEST_ID.set("ctx-id")
    try:
        log_access("req 7", HOSTILE, 3, "rest_tfserving", "OK", 0.0123456)
        logging.getLogger("primer.other").info("not shown at WARNING")
        logging.getLogger("primer.other").warning("shown")
    finally:
        REQUEST_ID.reset(token)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2, lines
    for line in lines:
        assert_clean(line)
    if log_json:
        access, other = (json.loads(line) for line in lines)
        assert {
            k: access[k]
            for k in ("request_id", "model", "version", "protocol", "status", "duration_ms")
        } == {
            "request_id": "req 7",
            "model": HOSTILE,
            "version": "3",
            "protocol": "rest_tfserving",
            "status": "OK",
            "duration_ms": 12.346,
        }
        assert access["logger"] == ACCESS_LOGGER
        assert other["request_id"] == "ctx-id"
    else:
        assert 'request_id="req 7"' in lines[0]
        assert "version=3 protocol=rest_tfserving status=OK duration_ms=12.346" in lines[0]
        assert "\\u202e" in lines[0]
        assert "[ctx-id]" in lines[1]


def test_access_log_off_writes_nothing(restore_logging: None) -> None:
    stream = io.StringIO()
    configure_logging(SimpleNamespace(log_level="INFO", log_json=True, access_log=False), stream)
    assert not logging.getLogger(ACCESS_LOGGER).isEnabledFor(logging.INFO)


@pytest.fixture
def access_log_on(server: ServerThread) -> Iterator[None]:
    settings = server.server.settings
    settings.access_log = True
    try:
        yield
    finally:
        settings.access_log = False


def access_records(caplog: pytest.LogCaptureFixture) -> list[dict]:
    return [r.fields for r in caplog.records if r.name == ACCESS_LOGGER]


def test_server_writes_one_access_line_per_request(
    rest: httpx.Client, traffic_model: str, access_log_on: None, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=ACCESS_LOGGER)
    body = instances_for(rest, traffic_model)
    ok = rest.post(
        f"/v1/models/{traffic_model}:predict", json=body, headers={"x-request-id": "trace-abc-1"}
    )
    missing = rest.post("/v1/models/no_such_model:predict", json=body)
    lines = access_records(caplog)
    assert len(lines) == 2, lines
    first, second = lines
    assert first["request_id"] == ok.headers["x-request-id"] == "trace-abc-1"
    assert (first["model"], first["version"], first["protocol"], first["status"]) == (
        traffic_model,
        "1",
        "rest_tfserving",
        "OK",
    )
    assert 0 < first["duration_ms"] < 60_000
    assert second["request_id"] == missing.headers["x-request-id"] != ""
    assert (second["model"], second["version"], second["status"]) == (
        "no_such_model",
        "",
        "NOT_FOUND",
    )
    entry = json.loads(
        JsonFormatter().format(next(r for r in caplog.records if r.name == ACCESS_LOGGER))
    )
    assert entry["request_id"] == "trace-abc-1" and entry["status"] == "OK"


def test_no_access_line_when_access_log_is_off(
    rest: httpx.Client, traffic_model: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    response = rest.post(
        f"/v1/models/{traffic_model}:predict", json=instances_for(rest, traffic_model)
    )
    assert response.status_code == 200
    assert access_records(caplog) == []
    assert [
        r for r in caplog.records if r.levelno >= logging.INFO and r.name.startswith("service")
    ] == []


def test_a_tensorflow_warning_is_written_once_in_our_format() -> None:
    """TensorFlow adds a handler of its own when it is imported before logging is set up (as
    primer-serve imports it); the record must still appear once, through ours."""
    script = (
        "import tensorflow as tf\n"
        "from service.config import Settings\n"
        "from service.logging_setup import configure_logging\n"
        "configure_logging(Settings())\n"
        "tf.get_logger().warning('MARKER %s', 'tf-warning')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stderr.splitlines() if "MARKER tf-warning" in line]
    assert len(lines) == 1, result.stderr
    assert " WARNING tensorflow: MARKER tf-warning" in lines[0]
