"""The payload log samples exactly what its seed predicts, rotates and keeps its retention,
redacts on request, and never fails a request when its disk refuses writes."""

from __future__ import annotations

import os
import random
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import orjson
import pytest
from pydantic import ValidationError

from service.config import Settings
from service.evaluation.payload_log import PayloadLog
from service.evaluation_settings import EvaluationSettings
from service.inference.events import Answered
from service.inference.request import InferenceRequest, Timing
from service.inference.side_work import SideWork
from service.metrics import Metrics
from tests.conftest import MNIST_NPZ, ServerThread, make_settings

REQUESTS = 120


def _serve(base: Path, **evaluation: object) -> ServerThread:
    return ServerThread(make_settings(base, evaluation=evaluation)).start()


def _send(thread: ServerThread, count: int) -> None:
    digits = np.load(MNIST_NPZ)["x_test"][:count].astype(np.float32) / 255.0
    with httpx.Client(base_url=thread.rest_url, timeout=60) as client:
        for number in range(count):
            response = client.post(
                "/v1/models/mnist_dnn:predict",
                json={"instances": digits[number : number + 1].tolist()},
                headers={"x-request-id": f"r{number}"},
            )
            assert response.status_code == 200, response.text


def _records(thread: ServerThread) -> list[dict]:
    log = thread.server.payload_log
    log.flush()
    return [orjson.loads(line) for path in log.files() for line in path.read_bytes().splitlines()]


@pytest.fixture
def stopping() -> Iterator[list[ServerThread]]:
    threads: list[ServerThread] = []
    yield threads
    for thread in threads:
        thread.stop()


def test_a_seeded_rate_logs_exactly_the_requests_the_seed_predicts(
    fixture_repository: Path, tmp_path: Path, stopping: list[ServerThread]
) -> None:
    thread = _serve(
        fixture_repository,
        payload_log_dir=str(tmp_path / "log"),
        payload_log_rates={"mnist_dnn": 0.3},
        payload_log_seed=1234,
    )
    stopping.append(thread)
    _send(thread, REQUESTS)
    sampler = random.Random(1234)
    expected = [f"r{n}" for n in range(REQUESTS) if sampler.random() < 0.3]
    records = _records(thread)
    assert [record["request_id"] for record in records] == expected
    record = records[0]
    assert (record["model"], record["version"], record["protocol"]) == (
        "mnist_dnn",
        1,
        "rest_tfserving",
    )
    (image,) = record["inputs"].values()
    assert len(image["sha256"]) == 64 and np.asarray(image["values"]).shape == (1, 28, 28)
    (scores,) = record["outputs"].values()
    assert len(scores["top_k"][0]) == 5 and scores["scores"][0] == sorted(scores["scores"][0])[::-1]
    assert record["latency_s"]["total"] >= record["latency_s"]["inference"] > 0
    metric = thread.server.metrics.registry.get_sample_value(
        "primer_payload_log_records_total", {"model": "mnist_dnn"}
    )
    assert metric == len(expected)


def test_digest_only_keeps_no_inputs_and_files_rotate_within_retention(
    fixture_repository: Path, tmp_path: Path, stopping: list[ServerThread]
) -> None:
    thread = _serve(
        fixture_repository,
        payload_log_dir=str(tmp_path / "log"),
        payload_log_rate=1.0,
        redact="digest-only",
        max_file_bytes=4096,
        max_files=3,
    )
    stopping.append(thread)
    _send(thread, 40)
    records = _records(thread)
    files = thread.server.payload_log.files()
    assert len(files) == 3 and all(path.stat().st_size <= 4096 for path in files)
    assert 0 < len(records) < 40  # the oldest files were deleted
    assert records[-1]["request_id"] == "r39"
    assert all(
        set(image) == {"sha256", "shape"}
        for record in records
        for image in record["inputs"].values()
    )


def test_an_unwritable_log_folder_fails_no_request_and_is_counted(
    fixture_repository: Path, tmp_path: Path, stopping: list[ServerThread]
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    thread = _serve(fixture_repository, payload_log_dir=str(blocker / "log"), payload_log_rate=1.0)
    stopping.append(thread)
    _send(thread, 10)  # every request still answers 200
    thread.server.payload_log.flush()
    value = thread.server.metrics.registry.get_sample_value
    assert value("primer_payload_log_disk_errors_total", {}) == 10
    assert (
        value("primer_payload_log_dropped_total", {"model": "mnist_dnn", "reason": "disk_error"})
        == 10
    )


def test_a_full_disk_fails_no_request_and_is_counted(
    fixture_repository: Path, tmp_path: Path, stopping: list[ServerThread]
) -> None:
    full = Path("/dev/full")
    if not full.exists():
        pytest.skip("no /dev/full on this system")
    folder = tmp_path / "log"
    folder.mkdir()
    (folder / "payload-1.jsonl").symlink_to(full)  # every write answers ENOSPC
    thread = _serve(fixture_repository, payload_log_dir=str(folder), payload_log_rate=1.0)
    stopping.append(thread)
    _send(thread, 5)
    thread.server.payload_log.flush()
    assert (
        thread.server.metrics.registry.get_sample_value("primer_payload_log_disk_errors_total", {})
        == 5
    )


@pytest.mark.parametrize(
    ("evaluation", "says"),
    [
        ({"payload_log_rate": 1.5}, "less than or equal to 1"),
        ({"payload_log_rates": {"mnist_dnn": -0.1}}, "expected 0..1"),
        ({"redact": "everything"}, "'none' or 'digest-only'"),
        ({"max_files": 0}, "greater than or equal to 1"),
        ({"queue_size": 0}, "greater than or equal to 1"),
        ({"feedback_window_s": 0}, "greater than 0"),
        ({"sample": 0.1}, "Extra inputs are not permitted"),
    ],
)
def test_every_bad_log_setting_is_a_clear_error(evaluation: dict, says: str) -> None:
    with pytest.raises(ValidationError, match="evaluation") as raised:
        Settings(model_base_path="models", evaluation=evaluation)
    assert says in str(raised.value)


def _event(number: int) -> Answered:
    scores = np.full((1, 10), 0.1, np.float32)
    return Answered(
        f"q{number}",
        "unit",
        "m",
        1,
        "serving_default",
        InferenceRequest("m", {"x": np.zeros((1, 3), np.float32)}),
        {"x": np.zeros((1, 3), np.float32)},
        {"y": scores},
        Timing(),
        0.0,
    )


def test_a_writer_that_falls_behind_drops_records_and_counts_them(tmp_path: Path) -> None:
    folder = tmp_path / "log"
    folder.mkdir()
    os.mkfifo(folder / "payload-1.jsonl")  # the writer blocks opening it until a reader comes
    metrics = Metrics()
    side_work = SideWork(lambda: 0, metrics)
    settings = EvaluationSettings(payload_log_dir=str(folder), payload_log_rate=1.0, queue_size=1)
    log = PayloadLog(settings, metrics, side_work)
    log.answered(_event(0))
    assert side_work.flush()  # serialized; the writer took it and is stuck opening the FIFO
    deadline = time.monotonic() + 60
    while not log._chunks.empty() and time.monotonic() < deadline:
        time.sleep(0.01)
    for number in range(1, 41):  # each call returns at once although the disk is stuck
        log.answered(_event(number))
    assert side_work.flush()
    dropped = metrics.registry.get_sample_value(
        "primer_payload_log_dropped_total", {"model": "m", "reason": "queue_full"}
    )
    shed = metrics.registry.get_sample_value(
        "primer_side_work_items_total", {"kind": "payload_log", "outcome": "shed"}
    )
    done = metrics.registry.get_sample_value(
        "primer_side_work_items_total", {"kind": "payload_log", "outcome": "done"}
    )
    assert done + shed == 41  # every record was either serialized or shed, none waited
    assert 39 <= dropped <= 40  # at most queue_size (1) more waits for the stuck disk
    reader = os.open(folder / "payload-1.jsonl", os.O_RDONLY | os.O_NONBLOCK)  # unblocks it
    try:
        log.flush()
        lines = os.read(reader, 1 << 20).splitlines()  # what it wrote (it keeps the file open)
    finally:
        os.close(reader)
    assert orjson.loads(lines[0])["request_id"] == "q0"
    assert len(lines) + dropped == 41  # written or dropped-and-counted: nothing lost silently
    log.close()


def test_records_shed_while_the_server_is_busy_are_counted_and_fail_no_request(
    fixture_repository: Path, tmp_path: Path, stopping: list[ServerThread]
) -> None:
    thread = _serve(
        fixture_repository,
        payload_log_dir=str(tmp_path / "log"),
        payload_log_rate=1.0,
        queue_size=3,
    )
    stopping.append(thread)
    side_work = thread.server.side_work
    side_work._load = lambda: 10**6  # as if clients kept the server saturated
    _send(thread, 10)  # every request still answers 200 (asserted in _send)
    assert not side_work.flush(timeout=0.2)  # the records wait: nothing was built
    value = thread.server.metrics.registry.get_sample_value
    shed = {"kind": "payload_log", "outcome": "shed"}
    assert value("primer_side_work_items_total", shed) == 7  # a lane of 3 took the first 3
    assert (
        value("primer_payload_log_dropped_total", {"model": "mnist_dnn", "reason": "queue_full"})
        == 7
    )
    side_work._load = thread.server.core.inflight  # the load falls: the waiting work runs
    assert [record["request_id"] for record in _records(thread)] == ["r0", "r1", "r2"]
    assert value("primer_side_work_items_total", {**shed, "outcome": "done"}) == 3
