"""TF1-style SavedModels, the kind stock TF Serving serves, built by this committed script.

Written through ``tf.compat.v1`` (graphs, placeholders, reference variables, the v1
``SavedModelBuilder``), so they load only with ``tf.compat.v1.Session`` semantics. Run
``python -m tests.tf1_models OUT_DIR`` to write them by hand; the tests build them into a
temporary model repository. Outputs are exact, so tests can assert them:

* ``tf1_half_plus_two`` — TF Serving's own test model, rebuilt: a placeholder of serialized
  ``tf.Example`` (unknown shape) parsed by ``parse_example`` into ``x`` (float, required) and
  ``x2`` (float, default 0); reference variables ``a = 0.5``, ``b``, ``c = 3``. Signatures:
  ``serving_default`` (predict ``x`` → ``y = a*x + b``), ``regress_x_to_y``,
  ``regress_x_to_y2`` (``a*x + c``), ``classify_x_to_y`` (scores ``y``, no classes), plus
  ``regress_x2_to_y3`` whose input is the float ``x2``, not serialized examples. Version
  ``00000123`` (a leading-zero folder name, as in TF Serving's testdata; version 123) has
  ``b = 2``, a ``main_op`` and exactly the signatures and tensor names of TF Serving's
  ``half_plus_two/00000123`` (its ``half_plus_two_model_metadata.json``). Version ``7`` has
  ``b = 1``, a legacy init op and one more signature, ``classify_x_to_labels`` (classes
  from a vocabulary asset through a lookup table the init op fills, scores ``[1 - p, p]``
  with ``p = sigmoid(a*x + b - 3)``).
* ``tfx_census`` — an Estimator/TFX-style export: ``serving_default`` is a classification
  signature over serialized examples (``inputs``), with features ``age`` (float),
  ``hours`` (int64) and ``color`` (bytes, looked up in a vocabulary asset; unknown → 0
  weight): ``logit = 0.1*age + 0.5*hours + w[color] - 4`` with ``w = red 1, green 2,
  blue -1``; classes ``["no", "yes"]``, scores ``[1 - p, p]``. ``predict`` (input
  ``examples``) returns ``probabilities``, ``logits``, ``class_ids`` and ``classes``;
  ``regression`` returns ``outputs = logit``. Version 1.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import tensorflow as tf

v1 = tf.compat.v1
signature_def_utils = v1.saved_model.signature_def_utils
HALF_PLUS_TWO = "tf1_half_plus_two"
CENSUS = "tfx_census"
LABELS = ("negative", "positive")
COLORS = ("red", "green", "blue")
COLOR_WEIGHTS = (1.0, 2.0, -1.0)


def half_plus_two_expected(x: float, b: float = 2.0) -> float:
    """``y`` of ``tf1_half_plus_two`` (``b`` is 2 at version 123, 1 at version 7)."""
    return 0.5 * x + b


def labels_expected(x: float, b: float = 2.0) -> list[tuple[str, float]]:
    """The ``classify_x_to_labels`` classes of one example."""
    p = 1.0 / (1.0 + math.exp(-(0.5 * x + b - 3.0)))
    return [(LABELS[0], 1.0 - p), (LABELS[1], p)]


def census_logit(age: float, hours: int, color: str) -> float:
    """``logit`` of ``tfx_census`` for one example."""
    weight = dict(zip(COLORS, COLOR_WEIGHTS, strict=True)).get(color, 0.0)
    return 0.1 * age + 0.5 * hours + weight - 4.0


def census_probability(age: float, hours: int, color: str) -> float:
    return 1.0 / (1.0 + math.exp(-census_logit(age, hours, color)))


def _write_asset(folder: Path, name: str, lines: tuple[str, ...]) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def _save(
    session: tf.compat.v1.Session,
    version_dir: Path,
    signatures: dict[str, object],
    init_op: tf.Operation,
    legacy: bool,
) -> None:
    builder = v1.saved_model.Builder(str(version_dir))
    assets = v1.get_collection(v1.GraphKeys.ASSET_FILEPATHS)
    if legacy:
        builder.add_meta_graph_and_variables(
            session,
            [v1.saved_model.tag_constants.SERVING],
            signature_def_map=signatures,
            assets_collection=assets,
            legacy_init_op=init_op,
        )
    else:
        builder.add_meta_graph_and_variables(
            session,
            [v1.saved_model.tag_constants.SERVING],
            signature_def_map=signatures,
            assets_collection=assets,
            main_op=init_op,
        )
    builder.save()


def _labels_signature(
    serialized: tf.Tensor, x: tf.Tensor, a: tf.Variable, b: tf.Variable, labels_path: str
) -> object:
    """``classify_x_to_labels``: classes read from a vocabulary asset by a lookup table."""
    p = tf.sigmoid(a * x + b - 3.0)
    scores = tf.concat([1.0 - p, p], axis=1, name="label_scores")
    label_table = v1.lookup.StaticHashTable(
        v1.lookup.TextFileInitializer(
            labels_path,
            tf.int64,
            v1.lookup.TextFileIndex.LINE_NUMBER,
            tf.string,
            v1.lookup.TextFileIndex.WHOLE_LINE,
        ),
        default_value="UNKNOWN",
    )
    ids = tf.tile(tf.constant([[0, 1]], tf.int64), [tf.shape(x)[0], 1])
    classes = tf.identity(label_table.lookup(ids), name="label_classes")
    return signature_def_utils.classification_signature_def(serialized, classes, scores)


def half_plus_two(version_dir: Path, b: float = 2.0, legacy_init_op: bool = False) -> Path:
    """One version of ``tf1_half_plus_two`` (see the module docstring): the legacy init op
    variant (version 7) also has ``classify_x_to_labels`` and its asset."""
    staging = version_dir.parent / f".assets-{version_dir.name}"
    graph = tf.Graph()
    with graph.as_default(), v1.Session(graph=graph) as session:
        a = v1.Variable(0.5, name="a", use_resource=False)
        b_var = v1.Variable(b, name="b", use_resource=False)
        c = v1.Variable(3.0, name="c", use_resource=False)
        serialized = v1.placeholder(tf.string, name="tf_example")
        parsed = v1.io.parse_example(
            serialized,
            {
                "x": v1.io.FixedLenFeature([1], tf.float32),
                "x2": v1.io.FixedLenFeature([1], tf.float32, default_value=[0.0]),
            },
        )
        for feature in parsed.values():  # what TF1's parse_example inferred; TF 2 does not
            feature.set_shape([None, 1])
        x = tf.identity(parsed["x"], name="x")
        y = tf.identity(a * x + b_var, name="y")
        y2 = tf.identity(a * x + c, name="y2")
        x2 = tf.identity(parsed["x2"], name="x2")
        y3 = tf.identity(a * x2 + c, name="y3")
        session.run(v1.global_variables_initializer())
        build = v1.saved_model.utils.build_tensor_info
        signatures = {
            "serving_default": signature_def_utils.predict_signature_def({"x": x}, {"y": y}),
            "regress_x_to_y": signature_def_utils.regression_signature_def(serialized, y),
            "regress_x_to_y2": signature_def_utils.regression_signature_def(serialized, y2),
            "classify_x_to_y": signature_def_utils.build_signature_def(
                {"inputs": build(serialized)},
                {"scores": build(y)},
                v1.saved_model.signature_constants.CLASSIFY_METHOD_NAME,
            ),
            "regress_x2_to_y3": signature_def_utils.build_signature_def(
                {"inputs": build(x2)},
                {"outputs": build(y3)},
                v1.saved_model.signature_constants.REGRESS_METHOD_NAME,
            ),
        }
        if legacy_init_op:
            labels_path = _write_asset(staging, "labels.txt", LABELS)
            signatures["classify_x_to_labels"] = _labels_signature(
                serialized, x, a, b_var, labels_path
            )
            init = v1.tables_initializer()
        else:
            init = v1.saved_model.main_op.main_op()
        _save(session, version_dir, signatures, init, legacy_init_op)
    if staging.exists():
        for leftover in staging.iterdir():
            leftover.unlink()
        staging.rmdir()
    return version_dir


def census(version_dir: Path) -> Path:
    """``tfx_census`` (see the module docstring)."""
    staging = version_dir.parent / f".assets-{version_dir.name}"
    colors_path = _write_asset(staging, "colors.txt", COLORS)
    graph = tf.Graph()
    with graph.as_default(), v1.Session(graph=graph) as session:
        serialized = v1.placeholder(tf.string, shape=[None], name="input_example_tensor")
        features = v1.io.parse_example(
            serialized,
            {
                "age": v1.io.FixedLenFeature([1], tf.float32),
                "hours": v1.io.FixedLenFeature([1], tf.int64, default_value=[0]),
                "color": v1.io.FixedLenFeature([1], tf.string, default_value=[""]),
            },
        )
        color_table = v1.lookup.StaticHashTable(
            v1.lookup.TextFileInitializer(
                colors_path,
                tf.string,
                v1.lookup.TextFileIndex.WHOLE_LINE,
                tf.int64,
                v1.lookup.TextFileIndex.LINE_NUMBER,
            ),
            default_value=-1,
        )
        color_ids = color_table.lookup(features["color"])
        weights = v1.Variable([*COLOR_WEIGHTS, 0.0], name="color_weights", use_resource=False)
        slots = tf.where(
            color_ids < 0, tf.fill(tf.shape(color_ids), tf.constant(3, tf.int64)), color_ids
        )
        color_weight = tf.gather(weights, slots)
        w_age = v1.Variable(0.1, name="w_age", use_resource=False)
        w_hours = v1.Variable(0.5, name="w_hours", use_resource=False)
        bias = v1.Variable(-4.0, name="bias", use_resource=False)
        hours = tf.cast(features["hours"], tf.float32)
        logits = tf.identity(
            w_age * features["age"] + w_hours * hours + color_weight + bias, "logits"
        )
        p = tf.sigmoid(logits)
        probabilities = tf.concat([1.0 - p, p], axis=1, name="probabilities")
        class_ids = tf.cast(p > 0.5, tf.int64, name="class_ids")
        names = tf.constant(["no", "yes"])
        batch = tf.shape(serialized)[0]
        classes = tf.tile(tf.expand_dims(names, 0), [batch, 1], name="classes")
        session.run(v1.global_variables_initializer())
        signatures = {
            "serving_default": signature_def_utils.classification_signature_def(
                serialized, classes, probabilities
            ),
            "predict": signature_def_utils.predict_signature_def(
                {"examples": serialized},
                {
                    "probabilities": probabilities,
                    "logits": logits,
                    "class_ids": class_ids,
                    "classes": tf.gather(names, class_ids),
                },
            ),
            "regression": signature_def_utils.regression_signature_def(serialized, logits),
        }
        _save(session, version_dir, signatures, v1.saved_model.main_op.main_op(), False)
    for leftover in staging.iterdir():
        leftover.unlink()
    staging.rmdir()
    return version_dir


def reference_output(version_dir: Path) -> Path:
    """``y = a*x + 2`` plus a signature whose output is the reference variable ``a`` itself
    (a ``float_ref`` tensor, which TensorFlow 2's loader cannot turn into a function)."""
    graph = tf.Graph()
    with graph.as_default(), v1.Session(graph=graph) as session:
        a = v1.Variable(0.5, name="a", use_resource=False)
        x = v1.placeholder(tf.float32, [None, 1], name="x")
        y = tf.identity(a * x + 2.0, name="y")
        session.run(v1.global_variables_initializer())
        signatures = {
            "serving_default": signature_def_utils.predict_signature_def({"x": x}, {"y": y}),
            "scale": signature_def_utils.predict_signature_def({"x": x}, {"a": a}),
        }
        _save(session, version_dir, signatures, v1.saved_model.main_op.main_op(), False)
    return version_dir


def build_repository(base: Path) -> Path:
    """``tf1_half_plus_two`` (versions 7 and 00000123) and ``tfx_census`` (version 1)."""
    half_plus_two(base / HALF_PLUS_TWO / "7", b=1.0, legacy_init_op=True)
    half_plus_two(base / HALF_PLUS_TWO / "00000123", b=2.0)
    census(base / CENSUS / "1")
    return base


if __name__ == "__main__":
    print(build_repository(Path(sys.argv[1])))
