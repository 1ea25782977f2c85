"""Two ``primer-train --strategy multi-worker`` processes on 127.0.0.1 train MNIST; worker 1
is killed during epoch 2 and restarted; the run resumes from the backup, exports one version,
and a server already watching the repository picks the version up and answers the MNIST
test images at the accuracy training measured.

What happens when a peer dies: the chief's next collective fails within seconds
(UnavailableError) and it exits with status 1 and one line saying to restart every worker;
the restarted workers restore the last backup (end of epoch 1) and go on at epoch 2.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from tests.conftest import ServerThread, make_settings
from tests.training.conftest import MNIST_NPZ
from tests.training.workers import free_ports, lines, start, tf_config, wait_for

pytestmark = pytest.mark.slow
EPOCHS = 5


def _stop(*processes: subprocess.Popen[bytes]) -> None:
    for process in processes:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=60)


def _started_epochs(log: Path) -> list[int]:
    started = [line for line in lines(log) if line.endswith("started")]
    return [int(line.split("epoch ")[1].split("/")[0]) for line in started]


def _wait_until_available(client: httpx.Client, name: str, version: int) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        response = client.get(f"/v1/models/{name}")
        if response.status_code == 200:
            states = {s["version"]: s["state"] for s in response.json()["model_version_status"]}
            if states.get(str(version)) == "AVAILABLE":
                return
        time.sleep(0.2)
    raise AssertionError(f"{name} version {version} not AVAILABLE within 120 s")


@pytest.fixture
def watching(tmp_path: Path) -> Iterator[ServerThread]:
    """A real server polling an empty model repository every 0.5 s, before training starts."""
    (tmp_path / "models").mkdir()
    server = ServerThread(make_settings(tmp_path / "models", poll_interval_s=0.5)).start()
    with httpx.Client(base_url=server.rest_url, timeout=30) as client:
        assert client.get("/v1/models/mnist_dnn").status_code == 404
    yield server
    server.stop()


def test_two_workers_survive_a_killed_worker_and_serve_the_result(
    tmp_path: Path, watching: ServerThread
) -> None:
    models, backup = tmp_path / "models", tmp_path / "backup"
    argv = ["mnist_dnn", "--data", str(MNIST_NPZ), "--strategy", "multi-worker",
            "--epochs", str(EPOCHS), "--backup-dir", str(backup),
            "--model-dir", str(models)]  # fmt: skip
    ports = free_ports(2)
    logs = {name: tmp_path / f"{name}.log" for name in ("w0", "w1", "w0-restart", "w1-restart")}
    tmp = {i: tmp_path / f"tmp-w{i}" for i in (0, 1)}
    chief = start(argv, logs["w0"], tf_config(ports, 0), tmp[0])
    worker = start(argv, logs["w1"], tf_config(ports, 1), tmp[1])
    restarted: list[subprocess.Popen[bytes]] = []
    try:
        wait_for(logs["w1"], f"epoch 2/{EPOCHS} (stage 1:all) started", worker, timeout=900)
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=60)
        restarted.append(start(argv, logs["w1-restart"], tf_config(ports, 1), tmp[1]))
        killed = time.monotonic()
        assert chief.wait(timeout=300) == 1  # its collective failed: the peer is gone
        print(f"chief exited {time.monotonic() - killed:.1f} s after worker 1 was killed")
        chief_lines = lines(logs["w0"])
        assert "a peer worker was lost during epoch 2" in chief_lines[-1], chief_lines
        assert "restart every worker with the same options to resume" in chief_lines[-1]
        assert not any(models.rglob("saved_model.pb"))
        restarted.append(start(argv, logs["w0-restart"], tf_config(ports, 0), tmp[0]))
        for process in restarted:
            assert process.wait(timeout=900) == 0, logs["w0-restart"].read_text()[-3000:]
    finally:
        _stop(chief, worker, *restarted)

    assert _started_epochs(logs["w0"]) == [1, 2] and _started_epochs(logs["w1"]) == [1, 2]
    for name in ("w0-restart", "w1-restart"):
        log = lines(logs[name])
        assert any("resumed from backup" in line and "going on at epoch 2" in line for line in log)
        assert _started_epochs(logs[name]) == list(range(2, EPOCHS + 1)), log  # not from 0
        assert any("global batch 256 = 128 per replica x 2 replica(s) over 2 worker(s)" in line
                   for line in log)  # fmt: skip
    assert lines(logs["w1-restart"])[-1].endswith("only the chief exports")
    assert sorted(p.name for p in (models / "mnist_dnn").iterdir()) == ["1"]  # exactly one
    left = [p.name for p in tmp[1].iterdir() if not p.name.startswith("__autograph_generated")]
    assert left == []  # worker 1's backups and export were removed (autograph's are TF's)
    version = models / "mnist_dnn" / "1"
    history = json.loads((version / "assets.extra" / "history.json").read_text())
    assert history["resumed_at"] == 2 and history["epochs_run"] == EPOCHS
    assert history["replicas"] == 2 and history["global_batch"] == 256
    assert history["test_accuracy"] >= 0.97

    with np.load(MNIST_NPZ) as data:
        images, labels = data["x_test"], data["y_test"]
    with httpx.Client(base_url=watching.rest_url, timeout=120) as client:
        _wait_until_available(client, "mnist_dnn", version=1)  # picked up by the poll
        predicted = []
        for i in range(0, len(images), 500):
            rows = (images[i : i + 500] / 255.0).tolist()
            response = client.post("/v1/models/mnist_dnn:predict", json={"instances": rows})
            assert response.status_code == 200, response.text
            predicted.extend(np.argmax(response.json()["predictions"], axis=1))
    served_accuracy = float(np.mean(np.array(predicted) == labels))
    print(
        f"served accuracy {served_accuracy:.4f}; training measured {history['test_accuracy']:.4f}"
    )
    assert served_accuracy >= 0.97
    assert abs(served_accuracy - history["test_accuracy"]) <= 0.001
