"""The TF1 session runtime: chosen per SavedModel, with TF Serving's session semantics."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from service.errors import InvalidInputError
from service.models.loader import load_version, open_runtime
from service.models.runtime import SavedModelRuntime
from service.models.session_runtime import SessionRuntime, is_tf1_saved_model
from tests import fixtures, tf1_models
from tests.tf1_models import CENSUS, HALF_PLUS_TWO

CPU = "/device:CPU:0"


def serialized(**features: float) -> np.ndarray:
    rows = []
    for name, value in features.items():
        example = tf.train.Example()
        example.features.feature[name].float_list.value.append(value)
        rows.append(example.SerializeToString())
    array = np.empty(len(rows), dtype=object)
    array[:] = rows
    return array


def test_tf1_saved_models_get_the_session_runtime(tf1_repository: Path, tmp_path: Path) -> None:
    tf2 = fixtures.half_plus_two(tmp_path / "1")
    assert not is_tf1_saved_model(tf2)
    assert isinstance(open_runtime(str(tf2), CPU), SavedModelRuntime)
    for version in (tf1_repository / HALF_PLUS_TWO / "00000123", tf1_repository / CENSUS / "1"):
        assert is_tf1_saved_model(version)
        runtime = open_runtime(str(version), CPU)
        assert isinstance(runtime, SessionRuntime)
        runtime.close()


def test_signatures_and_feeds_by_tensor_name(tf1_repository: Path) -> None:
    runtime = SessionRuntime(tf1_repository / HALF_PLUS_TWO / "00000123")
    try:
        assert (
            set(runtime.signatures)
            == set(runtime.signature_defs)
            == {
                "serving_default",
                "regress_x_to_y",
                "regress_x_to_y2",
                "regress_x2_to_y3",
                "classify_x_to_y",
            }
        )
        default = runtime.signatures["serving_default"]
        assert default.inputs["x"].tensor_name == "x:0"  # fed past the parse_example
        assert default.inputs["x"].shape == (None, 1)  # as the graph declares it
        assert runtime.signatures["regress_x_to_y"].inputs["inputs"].shape is None
        assert runtime.signatures["regress_x_to_y"].inputs["inputs"].is_string
        outputs = runtime.predict("serving_default", {"x": np.array([[2.0], [3.0]], np.float32)})
        assert outputs["y"].tolist() == [[3.0], [3.5]]
        outputs = runtime.predict("regress_x_to_y2", {"inputs": serialized(x=2.0)})
        assert outputs["outputs"].tolist() == [[4.0]]
    finally:
        runtime.close()


def test_assets_and_tables_survive_a_move(tf1_repository: Path, tmp_path: Path) -> None:
    """The lookup table reads the version's own assets/ copy, wherever the version is."""
    moved = shutil.copytree(tf1_repository / HALF_PLUS_TWO / "7", tmp_path / "7")
    loaded = load_version(str(moved), CPU, [1])  # legacy init op initializes the table
    try:
        outputs = loaded.runtime.predict("classify_x_to_labels", {"inputs": serialized(x=2.0)})
        assert outputs["classes"].tolist() == [[b"negative", b"positive"]]
        expected = [score for _, score in tf1_models.labels_expected(2.0, b=1.0)]
        assert outputs["scores"][0] == pytest.approx(expected, abs=1e-6)
    finally:
        loaded.runtime.close()


def test_reference_variables_that_tf2_cannot_load(tmp_path: Path) -> None:
    version = tf1_models.reference_output(tmp_path / "1")
    with pytest.raises(tf.errors.InvalidArgumentError, match="float_ref"):
        SavedModelRuntime(version)
    runtime = open_runtime(str(version), CPU)
    try:
        x = np.array([[2.0]], np.float32)
        assert runtime.predict("scale", {"x": x})["a"] == np.float32(0.5)
        assert runtime.predict("serving_default", {"x": x})["y"].tolist() == [[3.0]]
    finally:
        runtime.close()


def test_a_refused_feed_is_invalid_input_without_graph_noise(tf1_repository: Path) -> None:
    runtime = SessionRuntime(tf1_repository / CENSUS / "1")
    try:
        with pytest.raises(InvalidInputError) as info:
            runtime.predict("regression", {"inputs": serialized(hours=3.0)})
        message = info.value.message
        assert message.endswith("Data types don't match. Data type: float but expected type: int64")
        assert "[[" not in message and "File " not in message and "\n" not in message
        with pytest.raises(InvalidInputError, match=r"tf\.Example"):
            runtime.predict("regression", {"inputs": np.array([b"\xff\xfe"], dtype=object)})
        good = runtime.predict("regression", {"inputs": serialized(age=10.0)})
        assert good["outputs"].reshape(-1) == pytest.approx([tf1_models.census_logit(10, 0, "")])
    finally:
        runtime.close()
