"""The memory budget and the resource-preserving swap, on real SavedModels and sockets."""

from __future__ import annotations

import threading
from pathlib import Path

import httpx
import pytest

from service.config import ModelSettings
from service.models import memory
from tests.service.models.test_manager import export, start, states, wait_for


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    export(tmp_path, 1, offset=1.0)
    return tmp_path


PREDICT = "/v1/models/half_plus_two:predict"
BODY = {"instances": [[0, 0, 0]]}


class Outcomes:
    """A client thread predicting back to back; every answer's status code and headers."""

    def __init__(self, client: httpx.Client) -> None:
        self.client = client
        self.answers: list[httpx.Response] = []
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.answers.append(self.client.post(PREDICT, json=BODY))
            except httpx.HTTPError as exc:
                self.errors.append(repr(exc))

    def codes(self) -> set[int]:
        return {answer.status_code for answer in self.answers}

    def __enter__(self) -> Outcomes:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)


def footprint(repo: Path, version: int = 1) -> int:
    return memory.estimate_footprint(str(repo / "half_plus_two" / str(version)), 1.2)


@pytest.mark.parametrize("scope", ["process", "model"])
def test_a_version_over_the_budget_is_refused_and_the_old_one_keeps_serving(
    repo: Path, scope: str
) -> None:
    budget = int(footprint(repo) * 1.5)  # room for one copy, not two
    overrides = (
        {"memory_budget_bytes": budget}
        if scope == "process"
        else {"models": {"half_plus_two": ModelSettings(memory_budget_bytes=budget)}}
    )
    server, client = start(repo, **overrides)
    try:
        with Outcomes(client) as load:
            wait_for(lambda: len(load.answers) >= 5)
            export(repo, 2, offset=2.0)
            wait_for(lambda: states(client).get("2") == "END")
            settled = len(load.answers)
            wait_for(lambda: len(load.answers) >= settled + 5)
        assert load.errors == []
        assert load.codes() == {200}, "the serving version kept answering"
        assert {a.json()["predictions"][0][0] for a in load.answers} == {1.0}
        status = {
            s["version"]: s
            for s in client.get("/v1/models/half_plus_two").json()["model_version_status"]
        }
        assert status["1"]["state"] == "AVAILABLE"
        assert status["2"]["status"]["error_code"] == "RESOURCE_EXHAUSTED"
        message = status["2"]["status"]["error_message"]
        assert "memory budget" in message and "half_plus_two:2" in message
        metrics = client.get("/metrics").text
        assert (
            'primer_model_loads_refused_total{model="half_plus_two",reason="memory_budget"} 1.0'
            in metrics
        )
        assert (
            f'primer_model_memory_bytes{{model="half_plus_two",version="1"}} '
            f"{float(footprint(repo))}" in metrics
        )
        assert 'primer_model_memory_bytes{model="half_plus_two",version="2"}' not in metrics
    finally:
        client.close()
        server.stop()


def test_the_resource_policy_unloads_first_answers_503_with_retry_after_then_serves(
    repo: Path,
) -> None:
    policy = ModelSettings(swap_policy="resource")
    server, client = start(repo, models={"half_plus_two": policy})
    loader_busy = threading.Event()
    try:
        assert client.get("/v2/health/ready").status_code == 200
        # Hold the loader thread so the gap between the two versions stays open.
        server.server._load_executor.submit(loader_busy.wait, 60)
        with Outcomes(client) as load:
            export(repo, 2, offset=2.0)
            wait_for(lambda: "1" not in states(client) and states(client).get("2") == "LOADING")
            gap = client.post(PREDICT, json=BODY)
            assert gap.status_code == 503
            assert int(gap.headers["Retry-After"]) >= 1
            assert "no AVAILABLE version" in gap.json()["error"]
            assert client.get("/v2/health/ready").status_code != 200
            loader_busy.set()
            wait_for(lambda: states(client).get("2") == "AVAILABLE")
            served = len(load.answers)
            wait_for(lambda: len(load.answers) >= served + 5)
        assert client.get("/v2/health/ready").status_code == 200
        assert load.errors == []
        assert load.codes() <= {200, 503}, "never a 500 during the gap"
        offsets = [a.json()["predictions"][0][0] for a in load.answers if a.status_code == 200]
        assert offsets[-1] == 2.0
        assert all(int(a.headers["Retry-After"]) >= 1 for a in load.answers if a.status_code == 503)
    finally:
        loader_busy.set()
        client.close()
        server.stop()


def test_a_version_within_the_budget_loads(repo: Path) -> None:
    server, client = start(repo, memory_budget_bytes=footprint(repo) * 3)
    try:
        export(repo, 2, offset=2.0)
        wait_for(lambda: states(client) == {"2": "AVAILABLE"})
    finally:
        client.close()
        server.stop()
