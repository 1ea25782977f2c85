"""Model repository lifecycle on real SavedModels: hot reload, failures, policies, safety."""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from service.config import ModelSettings
from tests.conftest import ServerThread, make_settings
from tests.fixtures import half_plus_two


def export(base: Path, version: int, offset: float) -> Path:
    """Export half_plus_two with ``offset`` atomically, as the training exporter does."""
    temp = base / "half_plus_two" / f".tmp-{version}"
    half_plus_two(temp, offset=offset)
    final = base / "half_plus_two" / str(version)
    os.rename(temp, final)
    return final


def wait_for(condition: Callable[[], bool], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.05)


def states(client: httpx.Client) -> dict[str, str]:
    body = client.get("/v1/models/half_plus_two").json()
    return {s["version"]: s["state"] for s in body["model_version_status"]}


def predict_offset(client: httpx.Client) -> float:
    response = client.post("/v1/models/half_plus_two:predict", json={"instances": [[0, 0, 0]]})
    response.raise_for_status()
    return response.json()["predictions"][0][0]


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    export(tmp_path, 1, offset=1.0)
    return tmp_path


def start(base: Path, **overrides) -> tuple[ServerThread, httpx.Client]:
    thread = ServerThread(make_settings(base, poll_interval_s=0.1, **overrides)).start()
    return thread, httpx.Client(base_url=thread.rest_url, timeout=30)


class Load:
    """A client thread sending requests continuously and recording every outcome."""

    def __init__(self, client: httpx.Client) -> None:
        self.client = client
        self.offsets: list[float] = []
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.offsets.append(predict_offset(self.client))
            except Exception as exc:
                self.failures.append(repr(exc))

    def __enter__(self) -> Load:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)


def test_hot_reload_under_load_then_corrupt_version_is_reported(repo: Path) -> None:
    thread, client = start(repo)
    try:
        assert predict_offset(client) == 1.0
        with Load(client) as load:
            wait_for(lambda: len(load.offsets) > 20)
            export(repo, 2, offset=2.0)
            wait_for(lambda: states(client) == {"2": "AVAILABLE"})
            count = len(load.offsets)
            wait_for(lambda: len(load.offsets) > count + 20)
        assert load.failures == []
        assert set(load.offsets) == {1.0, 2.0}
        first_new = load.offsets.index(2.0)
        assert set(load.offsets[first_new:]) == {2.0}  # never back to the old version

        corrupt = repo / "half_plus_two" / ".tmp-3"
        shutil.copytree(repo / "half_plus_two" / "2", corrupt)
        pb = corrupt / "saved_model.pb"
        pb.write_bytes(pb.read_bytes()[:100])
        os.rename(corrupt, repo / "half_plus_two" / "3")
        wait_for(lambda: "3" in states(client) and states(client)["3"] == "END")
        status = {
            s["version"]: s
            for s in client.get("/v1/models/half_plus_two").json()["model_version_status"]
        }
        assert status["3"]["status"]["error_message"].startswith("FAILED to load")
        assert status["2"]["state"] == "AVAILABLE"
        assert predict_offset(client) == 2.0
        response = client.post(
            "/v1/models/half_plus_two/versions/3:predict", json={"instances": [[0, 0, 0]]}
        )
        assert response.status_code == 503
        assert "FAILED" in response.json()["error"]
        metrics = client.get("/metrics").text
        assert 'primer_model_state{model="half_plus_two",state="FAILED",version="3"} 1.0' in metrics
        assert client.get("/v2/health/ready").status_code == 200
    finally:
        thread.stop()


def test_removed_version_is_unloaded(repo: Path) -> None:
    export(repo, 2, offset=2.0)
    thread, client = start(repo, models={"half_plus_two": ModelSettings(version_policy="all")})
    try:
        assert states(client) == {"1": "AVAILABLE", "2": "AVAILABLE"}
        shutil.rmtree(repo / "half_plus_two" / "2")
        wait_for(lambda: states(client) == {"1": "AVAILABLE"})
        assert predict_offset(client) == 1.0
    finally:
        thread.stop()


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        (ModelSettings(version_policy="latest", latest=2), {"2", "3"}),
        (ModelSettings(version_policy="all"), {"1", "2", "3"}),
        (ModelSettings(version_policy="specific", versions=[1, 3]), {"1", "3"}),
    ],
)
def test_version_policies(repo: Path, policy: ModelSettings, expected: set[str]) -> None:
    export(repo, 2, offset=2.0)
    export(repo, 3, offset=3.0)
    thread, client = start(repo, models={"half_plus_two": policy})
    try:
        assert set(states(client)) == expected
        assert predict_offset(client) == float(max(expected))
    finally:
        thread.stop()


def test_version_labels_route_requests(repo: Path) -> None:
    export(repo, 2, offset=2.0)
    policy = ModelSettings(version_policy="all", version_labels={"stable": 1, "canary": 2})
    thread, client = start(repo, models={"half_plus_two": policy})
    try:
        response = client.post(
            "/v1/models/half_plus_two/labels/stable:predict", json={"instances": [[0, 0, 0]]}
        )
        assert response.json() == {"predictions": [[1.0, 1.0, 1.0]]}
        response = client.get("/v1/models/half_plus_two/labels/nope")
        assert response.status_code == 404
    finally:
        thread.stop()


def test_temp_folders_and_escaping_symlinks_are_ignored(repo: Path, tmp_path_factory) -> None:
    half = repo / "half_plus_two"
    shutil.copytree(half / "1", half / ".tmp-9")  # an interrupted export
    outside = tmp_path_factory.mktemp("outside")
    half_plus_two(outside / "model", offset=9.0)
    os.symlink(outside / "model", half / "7")
    thread, client = start(repo)
    try:
        assert states(client) == {"1": "AVAILABLE"}
    finally:
        thread.stop()


def test_model_base_path_on_tensorflow_ram_filesystem(tmp_path: Path) -> None:
    """Any tf.io.gfile filesystem works as the base path (gs:// in production)."""
    import tensorflow as tf

    local = half_plus_two(tmp_path / "src", offset=4.0)
    base = f"ram://models-{os.getpid()}"
    for root, _, files in os.walk(local):
        for name in files:
            relative = os.path.relpath(os.path.join(root, name), local)
            target = f"{base}/half_plus_two/1/{relative}"
            tf.io.gfile.makedirs(os.path.dirname(target))
            tf.io.gfile.copy(os.path.join(root, name), target, overwrite=True)
    thread = ServerThread(make_settings(Path("."), model_base_path=base)).start()
    try:
        with httpx.Client(base_url=thread.rest_url) as client:
            assert predict_offset(client) == 4.0
    finally:
        thread.stop()
