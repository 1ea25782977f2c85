"""Export: the SavedModel contract, model.json, warm-up records, versions, atomicity."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import prediction_log_pb2

from contract.layout import (
    INPUT_NAME,
    MODEL_CARD_PATH,
    OUTPUT_NAME,
    SIGNATURE,
    STAGING_PREFIX,
    WARMUP_PATH,
)
from contract.model_card import read_model_card
from contract.reference_profile import read_profile
from tests.training.conftest import REPO_ROOT, TrainedMnist
from training import export
from training.data.inputs import image_contract
from training.export import export_model
from training.models.architectures import mnist_dnn
from training.repository import ExportError, list_versions, next_version

TINY_CONTRACT = image_contract("grayscale", 4, 4)


def _tiny_export(model_dir: Path, **kwargs) -> Path:
    return export_model(
        mnist_dnn((4, 4), 3),
        model_dir=model_dir,
        name="tiny",
        image=TINY_CONTRACT,
        labels=["a", "b", "c"],
        provenance={"architecture": "mnist_dnn", "dataset": "none", "epochs": 0},
        **kwargs,
    )


@pytest.fixture(scope="module")
def exported(trained_mnist: TrainedMnist, tmp_path_factory: pytest.TempPathFactory) -> Path:
    result = trained_mnist.result
    return export_model(
        trained_mnist.model,
        model_dir=tmp_path_factory.mktemp("models"),
        name="mnist_dnn",
        image=trained_mnist.contract,
        labels=trained_mnist.class_names,
        provenance={
            "architecture": "mnist_dnn",
            "dataset": "mnist",
            "epochs": result.epochs_run,
            "test_accuracy": result.test_accuracy,
        },
        warmup_batch=trained_mnist.x_test[:3],
        assets={"history.json": result.to_json(), "training_curves.png": b"\x89PNG"},
    )


def test_saved_model_matches_the_keras_model_at_batch_1_and_7(
    exported: Path, trained_mnist: TrainedMnist
) -> None:
    assert exported.name == "1"
    serving = tf.saved_model.load(str(exported)).signatures[SIGNATURE]
    for batch in (1, 7):
        x = trained_mnist.x_test[10 : 10 + batch]
        outputs = serving(**{INPUT_NAME: tf.constant(x)})
        assert set(outputs) == {OUTPUT_NAME}
        got = outputs[OUTPUT_NAME].numpy()
        assert got.shape == (batch, 10)
        np.testing.assert_allclose(got, trained_mnist.model(x, training=False).numpy(), atol=1e-6)


def test_model_json_states_the_signature_exactly(
    exported: Path, trained_mnist: TrainedMnist
) -> None:
    card = read_model_card(exported)
    assert card is not None
    serving = tf.saved_model.load(str(exported)).signatures[SIGNATURE]
    _, inputs = serving.structured_input_signature
    assert len(card.inputs) == len(inputs) == 1
    spec = inputs[card.inputs[0].name]
    assert card.inputs[0].name == INPUT_NAME == "image"
    assert card.inputs[0].dtype == spec.dtype.name == "float32"
    assert list(card.inputs[0].shape) == [-1 if d is None else d for d in spec.shape]
    assert card.inputs[0].shape == (-1, 28, 28)
    out_spec = serving.structured_outputs[OUTPUT_NAME]
    assert card.outputs[0].name == OUTPUT_NAME
    assert card.outputs[0].dtype == out_spec.dtype.name
    assert card.outputs[0].shape == (-1, 10)
    assert card.signature == SIGNATURE
    assert card.image == trained_mnist.contract
    assert card.labels == tuple(str(d) for d in range(10))
    provenance = card.provenance
    assert provenance["test_accuracy"] == trained_mnist.result.test_accuracy
    assert provenance["tensorflow"] == tf.__version__
    assert provenance["created"].endswith("Z")
    for key in ("architecture", "dataset", "epochs", "keras"):
        assert key in provenance
    raw = json.loads((exported / MODEL_CARD_PATH).read_text())
    assert raw["format"] == 1 and raw["inputs"][0]["shape"] == [-1, 28, 28]


def test_warmup_file_is_tf_serving_format(exported: Path, trained_mnist: TrainedMnist) -> None:
    records = list(tf.data.TFRecordDataset(str(exported / WARMUP_PATH)))
    assert len(records) == 1
    log = prediction_log_pb2.PredictionLog.FromString(records[0].numpy())
    request = log.predict_log.request
    assert request.model_spec.name == "mnist_dnn"
    assert request.model_spec.signature_name == SIGNATURE
    batch = tf.make_ndarray(request.inputs[INPUT_NAME])
    np.testing.assert_array_equal(batch, trained_mnist.x_test[:3])


def test_layout_and_extra_assets(exported: Path) -> None:
    assert (exported / "saved_model.pb").is_file()
    assert (exported / "variables").is_dir()
    extra = exported / "assets.extra"
    assert json.loads((extra / "history.json").read_text())["epochs_run"] >= 1
    assert (extra / "training_curves.png").read_bytes() == b"\x89PNG"
    assert (extra / "labels.txt").read_text().splitlines() == [str(d) for d in range(10)]
    assert stat.S_IMODE(exported.stat().st_mode) == 0o755
    assert not [p for p in exported.parent.iterdir() if p.name.startswith(".")]


def test_versions_count_up_and_pinned_versions_are_never_overwritten(tmp_path: Path) -> None:
    assert _tiny_export(tmp_path).name == "1"
    assert _tiny_export(tmp_path).name == "2"
    assert _tiny_export(tmp_path, version=7).name == "7"
    assert _tiny_export(tmp_path).name == "8"
    before = (tmp_path / "tiny" / "7" / "saved_model.pb").stat().st_mtime_ns
    with pytest.raises(ExportError, match="version 7 already exists"):
        _tiny_export(tmp_path, version=7)
    assert (tmp_path / "tiny" / "7" / "saved_model.pb").stat().st_mtime_ns == before
    assert list_versions(tmp_path / "tiny") == [1, 2, 7, 8]


@pytest.mark.parametrize("failure", [RuntimeError("disk full"), KeyboardInterrupt()])
def test_failed_export_leaves_no_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failure: BaseException
) -> None:
    _tiny_export(tmp_path)

    def fail(*args: object, **kwargs: object) -> None:
        raise failure

    monkeypatch.setattr(export, "write_warmup_requests", fail)  # after the SavedModel
    with pytest.raises(type(failure)):
        _tiny_export(tmp_path)
    assert sorted(p.name for p in (tmp_path / "tiny").iterdir()) == ["1"]


KILLED_EXPORT = textwrap.dedent(
    """
    import os, sys
    from training import export
    from training.models.architectures import mnist_dnn
    from training.data.inputs import image_contract

    def killed(src, dst):  # the process dies just before the atomic rename
        os._exit(9)

    export.os.rename = killed
    export.export_model(mnist_dnn((4, 4), 3), model_dir=sys.argv[1], name="tiny",
                        image=image_contract("grayscale", 4, 4), labels=["a", "b", "c"],
                        provenance={})
    """
)


def test_killed_export_leaves_only_an_ignored_temp_folder(tmp_path: Path) -> None:
    _tiny_export(tmp_path)
    process = subprocess.run(
        [sys.executable, "-c", KILLED_EXPORT, str(tmp_path)],
        cwd=REPO_ROOT,
        capture_output=True,
        timeout=300,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    assert process.returncode == 9, process.stderr.decode()[-2000:]
    leftovers = [p for p in (tmp_path / "tiny").iterdir() if p.name != "1"]
    assert len(leftovers) == 1
    leftover = leftovers[0]
    assert leftover.name.startswith(STAGING_PREFIX)  # dot-prefixed, never all digits
    assert (leftover / "saved_model.pb").is_file()  # it was a complete-looking model
    assert list_versions(tmp_path / "tiny") == [1]
    assert next_version(tmp_path / "tiny") == 2
    assert _tiny_export(tmp_path).name == "2"


def test_warmup_batch_must_fit_the_model(tmp_path: Path) -> None:
    with pytest.raises(ExportError, match="warm-up batch has shape"):
        _tiny_export(tmp_path, warmup_batch=np.zeros((2, 5, 5), np.float32))
    assert not (tmp_path / "tiny").exists() or list_versions(tmp_path / "tiny") == []


def test_reference_inputs_write_the_drift_profile(tmp_path: Path) -> None:
    inputs = np.random.default_rng(0).random((20, 4, 4)).astype(np.float32)
    version_dir = _tiny_export(tmp_path, reference_inputs=inputs)
    profile = read_profile(version_dir)
    assert profile is not None and len(profile.classes) == 3
    assert sum(profile.pixels) == pytest.approx(1.0)
    assert read_profile(_tiny_export(tmp_path)) is None  # none asked, none written
