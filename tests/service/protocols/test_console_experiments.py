"""Live accuracy per arm of a traffic split, and the console showing each version's runtime,
share of the split and live accuracy, and a model's rollout, in a real headless browser.

mnist_dnn is served at versions 1 and 2 under a 50/50 split. Version 2 is the same network
with its class names rotated by one in model.json, so it answers the wrong digit for every
image version 1 gets right: the two arms' live accuracies differ, and each must equal the
accuracy computed offline over the requests that arm served.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
import tensorflow as tf

from tests import fixtures
from tests.conftest import MNIST_NPZ, SHIPPED_MODELS, ServerThread, make_settings
from tests.service.protocols.conftest import REPORTS

REQUESTS = 300


@pytest.fixture(scope="module")
def split_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    base = tmp_path_factory.mktemp("split-models")
    for version in ("1", "2"):
        shutil.copytree(SHIPPED_MODELS / "mnist_dnn" / "1", base / "mnist_dnn" / version)
    card_path = base / "mnist_dnn" / "2" / "assets.extra" / "model.json"
    card = json.loads(card_path.read_text())
    card["labels"] = [str((int(label) + 1) % 10) for label in card["labels"]]
    card_path.write_text(json.dumps(card))
    fixtures.rollout_candidates(base / "half_plus_two")
    rollout = {"candidate": 2, "baseline": 1, "steps": [25, 100], "interval_s": 3600}
    settings = make_settings(
        Path(base),
        models={
            "mnist_dnn": {"version_policy": "all", "traffic": {"1": 50, "2": 50}},
            "half_plus_two": {"version_policy": "specific", "versions": [1, 2], "rollout": rollout},
        },
    )
    thread = ServerThread(settings).start()
    yield thread
    thread.stop()


def test_live_accuracy_per_arm_equals_each_arms_offline_accuracy(
    split_server: ServerThread,
) -> None:
    data = np.load(MNIST_NPZ)
    images = data["x_test"][:REQUESTS].astype(np.float32) / 255.0
    truth = data["y_test"][:REQUESTS].astype(int)
    offline = tf.saved_model.load(str(SHIPPED_MODELS / "mnist_dnn" / "1"))
    scores = offline.signatures["serving_default"](image=tf.constant(images))["probabilities"]
    predicted = np.argmax(scores.numpy(), axis=1)
    right_on = {1: predicted == truth, 2: (predicted + 1) % 10 == truth}  # v2's rotated names
    served: dict[int, list[int]] = {1: [], 2: []}
    with httpx.Client(base_url=split_server.rest_url, timeout=60) as client:
        for row, image in enumerate(images):
            response = client.post(
                "/v1/models/mnist_dnn:predict",
                json={"inputs": image[None].tolist()},
                headers={"x-request-id": f"arm-{row}"},
            )
            assert response.status_code == 200, response.text
            served[int(response.headers["x-model-version"])].append(row)
        labels = [{"request_id": f"arm-{row}", "label": str(truth[row])} for row in range(REQUESTS)]
        assert client.post("/v1/models/mnist_dnn:feedback", json=labels).status_code == 200
        summary = client.get("/console/summary").json()
    assert min(len(rows) for rows in served.values()) > REQUESTS / 4  # both arms served
    versions = {
        v["version"]: v
        for m in summary["models"]
        if m["name"] == "mnist_dnn"
        for v in m["versions"]
    }
    metrics = split_server.server.metrics.registry
    for version, rows in served.items():
        expected = float(np.mean(right_on[version][rows]))
        labels = {"model": "mnist_dnn", "version": str(version)}
        assert versions[version]["live_accuracy"] == pytest.approx(expected, abs=1e-6)
        assert metrics.get_sample_value("primer_live_accuracy", labels) == pytest.approx(
            expected, abs=1e-6
        )
        assert versions[version]["labelled"] == len(rows)
        assert versions[version]["traffic_share"] == 0.5
        assert versions[version]["runtime"] == "tensorflow"
    assert versions[1]["live_accuracy"] > 0.9 > 0.1 > versions[2]["live_accuracy"]


def test_the_console_shows_runtime_split_accuracy_per_arm_and_the_rollout(
    browser: object, split_server: ServerThread
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ready
    from selenium.webdriver.support.ui import WebDriverWait

    with httpx.Client(base_url=split_server.rest_url, timeout=60) as client:
        summary = client.get("/console/summary").json()
    accuracy = {
        v["version"]: v["live_accuracy"]
        for m in summary["models"]
        if m["name"] == "mnist_dnn"
        for v in m["versions"]
    }
    chrome = browser
    chrome.get(split_server.rest_url + "/")
    WebDriverWait(chrome, 60).until(
        ready.presence_of_element_located((By.CSS_SELECTOR, "body[data-loaded=true]"))
    )
    for version in (1, 2):
        row = chrome.find_element(
            By.CSS_SELECTOR, f"#models tbody tr[data-model=mnist_dnn][data-version='{version}']"
        )
        assert row.find_element(By.CSS_SELECTOR, ".runtime").text == "tensorflow"
        assert row.find_element(By.CSS_SELECTOR, ".share").text == "50.0%"
        shown = row.find_element(By.CSS_SELECTOR, ".accuracy").text
        assert accuracy[version] is not None and shown == f"{accuracy[version]:.4f}"
    split = chrome.find_element(By.CSS_SELECTOR, "#experiments tr[data-model=mnist_dnn] .split")
    assert split.text == "1: 50.0%, 2: 50.0%"
    rollout = chrome.find_element(
        By.CSS_SELECTOR, "#experiments tr[data-model=half_plus_two] .rollout"
    )
    assert rollout.text == "1 → 2: running at 25% (step 1 of 2)"
    assert "running" in rollout.get_attribute("class")
    REPORTS.mkdir(exist_ok=True)
    assert chrome.save_screenshot(str(REPORTS / "console-experiments.png"))
