"""``tensorflow_model_server`` on real sockets: a model config file with two models and version
labels, its batching and monitoring files, and the config file's live reload.

The command runs as a subprocess (``python -m service.tfserving_cli.main``, what the console
script calls) with TF Serving's flags, the way TF Serving's own model-server tests start
``tensorflow_model_server --model_config_file=...``. Polling a separate process has no event
to wait on, so the waits poll with a deadline.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from loadtest.processes import stop
from tests.conftest import REPO_ROOT
from tests.fixtures import half_plus_two, two_versions
from tests.suites.deploy.test_entrypoint import free_port

START_TIMEOUT_S = 240
RELOAD_TIMEOUT_S = 60
METRICS_PATH = "/monitoring/prometheus/metrics"


def model_config(entries: str) -> str:
    return f"model_config_list {{\n{entries}\n}}\n"


def tv_entry(root: Path, versions: str, labels: dict[str, int]) -> str:
    label_text = " ".join(f'version_labels {{ key: "{k}" value: {v} }}' for k, v in labels.items())
    return (
        f'  config {{ name: "tv" base_path: "{root}/tv" model_platform: "tensorflow"\n'
        f"    model_version_policy {{ {versions} }} {label_text} }}"
    )


def plain_entry(name: str, folder: Path) -> str:
    return f'  config {{ name: "{name}" base_path: "{folder}" model_platform: "tensorflow" }}'


def replace_file(path: Path, text: str) -> None:
    """Write beside, then rename: the poller never reads half a file."""
    staging = path.with_suffix(".staging")
    staging.write_text(text)
    os.replace(staging, path)


@dataclass
class Served:
    process: subprocess.Popen[bytes]
    rest: httpx.Client
    grpc_target: str
    config: Path
    root: Path
    log: Path

    def predict(self, path: str, rows: list[list[float]]) -> httpx.Response:
        return self.rest.post(f"/v1/models/{path}:predict", json={"instances": rows})

    def available(self, model: str) -> set[int]:
        response = self.rest.get(f"/v1/models/{model}")
        if response.status_code != 200:
            return set()
        return {
            int(s["version"])
            for s in response.json()["model_version_status"]
            if s["state"] == "AVAILABLE"
        }

    def metric(self, family: str, **labels: str) -> float:
        text = self.rest.get(METRICS_PATH).text
        return sum(
            sample.value
            for parsed in text_string_to_metric_families(text)
            if parsed.name == family
            for sample in parsed.samples
            if sample.name == f"{family}_total"
            and all(sample.labels.get(k) == v for k, v in labels.items())
        )

    def wait_for(self, condition: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + RELOAD_TIMEOUT_S
        while time.monotonic() < deadline:
            if condition():
                return
            time.sleep(0.25)
        pytest.fail(f"not within {RELOAD_TIMEOUT_S} s: {what}\n{self.log.read_text()[-4000:]}")


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    root = tmp_path_factory.mktemp("tfs")
    two_versions(root / "tv")  # v1: 0.5x + 2, v2: x + 2
    half_plus_two(root / "half_folder" / "1")
    half_plus_two(root / "third_folder" / "1", scale=1.0, offset=10.0)
    config = root / "models.config"
    config.write_text(
        model_config(
            tv_entry(root, "all {}", {"stable": 1, "canary": 2})
            + "\n"
            + plain_entry("half", root / "half_folder")
        )
    )
    batching = root / "batching.config"
    batching.write_text(
        "max_batch_size { value: 8 }\nbatch_timeout_micros { value: 1000 }\n"
        "num_batch_threads { value: 1 }\nallowed_batch_sizes: 4\nallowed_batch_sizes: 8\n"
    )
    monitoring = root / "monitoring.config"
    monitoring.write_text("prometheus_config {\n  enable: true\n}\n")
    rest_port, grpc_port = free_port(), free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "PRIMER_HOST": "127.0.0.1"}
    argv = [
        sys.executable,
        "-m",
        "service.tfserving_cli.main",
        f"--port={grpc_port}",
        f"--rest_api_port={rest_port}",
        f"--model_config_file={config}",
        "--model_config_file_poll_wait_seconds=1",
        "--file_system_poll_wait_seconds=1",
        "--enable_batching=true",
        f"--batching_parameters_file={batching}",
        f"--monitoring_config_file={monitoring}",
    ]
    log = root / "server.log"
    with log.open("wb") as output:
        process = subprocess.Popen(argv, env=env, stdout=output, stderr=subprocess.STDOUT)
    client = httpx.Client(base_url=f"http://127.0.0.1:{rest_port}", timeout=60)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if process.poll() is not None:
                pytest.fail(f"exited with {process.returncode}:\n{log.read_text()[-4000:]}")
            try:
                if client.get("/v2/health/ready").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"not ready in {START_TIMEOUT_S} s:\n{log.read_text()[-4000:]}")
            time.sleep(0.25)
        yield Served(process, client, f"127.0.0.1:{grpc_port}", config, root, log)
    finally:
        client.close()
        code = stop(process)
    assert code == 0, log.read_text()[-4000:]


def test_two_models_from_their_own_folders(served: Served) -> None:
    assert served.available("tv") == {1, 2}  # the all {} policy
    assert served.available("half") == {1}
    assert served.predict("half", [[1.0, 2.0, 3.0]]).json() == {"predictions": [[2.5, 3.0, 3.5]]}
    assert served.rest.get("/v1/models/third_folder").status_code == 404


def test_version_labels_over_rest_and_grpc(served: Served) -> None:
    stable = served.predict("tv/labels/stable", [[1.0, 2.0, 3.0]])
    assert stable.json() == {"predictions": [[2.5, 3.0, 3.5]]}, stable.text
    canary = served.predict("tv/labels/canary", [[1.0, 2.0, 3.0]])
    assert canary.json() == {"predictions": [[3.0, 4.0, 5.0]]}, canary.text
    assert served.predict("tv/labels/nightly", [[1.0, 2.0, 3.0]]).status_code in (400, 404)
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "tv"
    request.model_spec.version_label = "canary"
    request.inputs["x"].dtype = 1  # DT_FLOAT
    request.inputs["x"].tensor_shape.dim.add(size=1)
    request.inputs["x"].tensor_shape.dim.add(size=3)
    request.inputs["x"].float_val.extend([1.0, 2.0, 3.0])
    with grpc.insecure_channel(served.grpc_target) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        response = stub.Predict(request, timeout=30)
    assert response.model_spec.version.value == 2
    assert list(response.outputs["y"].float_val) == [3.0, 4.0, 5.0]  # typed fields by default


def test_batching_parameters_file_shapes_the_batches(served: Served) -> None:
    """allowed_batch_sizes 4, 8: a request of 3 rows runs padded to 4 (one padding row)."""
    before = served.metric("primer_batch_padding_rows", model="half")
    rows = [[1.0, 2.0, 3.0]] * 3
    assert served.predict("half", rows).json() == {"predictions": [[2.5, 3.0, 3.5]] * 3}
    assert served.metric("primer_batch_padding_rows", model="half") - before == 1


def test_metrics_at_the_monitoring_path(served: Served) -> None:
    response = served.rest.get(METRICS_PATH)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert served.metric("primer_requests", model="half", protocol="rest_tfserving") >= 1
    assert served.rest.get("/metrics").status_code == 200  # this server's own path stays


def test_config_file_reload_adds_removes_and_relabels(served: Served) -> None:
    replace_file(
        served.config,
        model_config(
            tv_entry(served.root, "specific { versions: 2 }", {"stable": 2})
            + "\n"
            + plain_entry("third", served.root / "third_folder")
        ),
    )
    served.wait_for(lambda: served.available("third") == {1}, "model 'third' loaded")
    served.wait_for(
        lambda: served.rest.get("/v1/models/half").status_code == 404, "model 'half' unloaded"
    )
    served.wait_for(lambda: served.available("tv") == {2}, "tv version 1 retired")
    stable = served.predict("tv/labels/stable", [[1.0, 2.0, 3.0]])
    assert stable.json() == {"predictions": [[3.0, 4.0, 5.0]]}, stable.text
    third = served.predict("third", [[1.0, 2.0, 3.0]])
    assert third.json() == {"predictions": [[11.0, 12.0, 13.0]]}, third.text


def test_a_broken_config_edit_changes_nothing(served: Served) -> None:
    invalid = served.metric("primer_config_reloads", outcome="invalid")
    replace_file(served.config, "model_config_list { config { name: ")
    served.wait_for(
        lambda: served.metric("primer_config_reloads", outcome="invalid") > invalid,
        "the broken file refused",
    )
    assert served.available("third") == {1}
    assert served.predict("third", [[0.0, 0.0, 0.0]]).json() == {"predictions": [[10.0] * 3]}
    assert "not a valid ModelServerConfig text proto" in served.log.read_text()
