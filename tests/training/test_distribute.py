"""TF_CONFIG is checked without TensorFlow: a bad one is one clear line before training."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.training.conftest import MNIST_NPZ
from training.cli import main
from training.distribute import ClusterError, read_cluster

WORKERS = {"worker": ["127.0.0.1:2222", "127.0.0.1:2223"]}


def _config(cluster: object = None, task: object = None) -> dict[str, str]:
    return {"TF_CONFIG": json.dumps({"cluster": cluster or WORKERS, "task": task})}


def test_worker_zero_is_the_chief() -> None:
    first = read_cluster("multi-worker", _config(task={"type": "worker", "index": 0}))
    second = read_cluster("multi-worker", _config(task={"type": "worker", "index": 1}))
    assert (first.is_chief, first.workers, first.name) == (True, 2, "worker 0")
    assert (second.is_chief, second.task_index) == (False, 1)


def test_a_chief_task_takes_over_from_worker_zero() -> None:
    cluster = {"chief": ["127.0.0.1:2221"], **WORKERS}
    chief = read_cluster("multi-worker", _config(cluster, {"type": "chief", "index": 0}))
    worker = read_cluster("multi-worker", _config(cluster, {"type": "worker", "index": 0}))
    assert chief.is_chief and not worker.is_chief and chief.workers == 3


def test_other_strategies_ignore_tf_config() -> None:
    assert read_cluster("default", {"TF_CONFIG": "{not json"}).is_chief


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, "--strategy multi-worker needs TF_CONFIG"),
        ({"TF_CONFIG": "{not json"}, "TF_CONFIG is not JSON"),
        ({"TF_CONFIG": "[1]"}, "TF_CONFIG must be a JSON object"),
        ({"TF_CONFIG": '{"task": {"type": "worker", "index": 0}}'}, "no 'cluster' object"),
        (_config(task={"type": "worker", "index": 2}), "task index 2 is out of range"),
        (_config(task={"type": "worker", "index": -1}), "expected 0 to 1"),
        (_config(task={"type": "worker", "index": "0"}), "task index '0' is out of range"),
        (_config(task={"type": "ps", "index": 0}), "task type 'ps' is not in the cluster"),
        (_config({"worker": ["127.0.0.1"]}, {"type": "worker", "index": 0}), "is not host:port"),
        (_config({"ps": ["h:1"]}, {"type": "ps", "index": 0}), "only 'chief' and 'worker'"),
        (_config({"worker": []}, {"type": "worker", "index": 0}), "non-empty list"),
        ({"TF_CONFIG": json.dumps({"cluster": WORKERS})}, "no 'task' object"),
    ],
)
def test_bad_tf_config(environ: dict[str, str], expected: str) -> None:
    with pytest.raises(ClusterError, match=expected):
        read_cluster("multi-worker", environ)


def test_cli_refuses_an_index_out_of_range_before_training(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    task = {"type": "worker", "index": 5}
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": WORKERS, "task": task}))
    argv = ["mnist_dnn", "--data", str(MNIST_NPZ), "--limit", "100", "--strategy",
            "multi-worker", "--model-dir", str(tmp_path / "models")]  # fmt: skip
    assert main(argv) == 2
    err = capsys.readouterr()
    assert err.err.strip().splitlines() == [
        "primer-train: error: TF_CONFIG task index 5 is out of range: the cluster has 2 "
        "worker address(es), so expected 0 to 1"
    ]
    assert "epoch" not in err.out and not (tmp_path / "models").exists()


def test_cli_refuses_a_malformed_tf_config(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("TF_CONFIG", '{"cluster": {"worker": ["127.0.0.1:1"]}, "task": ')
    argv = ["mnist_dnn", "--data", str(MNIST_NPZ), "--limit", "100", "--strategy", "multi-worker"]
    assert main(argv) == 2
    assert "primer-train: error: TF_CONFIG is not JSON (Expecting value" in capsys.readouterr().err
