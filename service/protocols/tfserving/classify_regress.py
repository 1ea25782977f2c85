"""Classify, Regress and MultiInference over ``tf.Example``, as TF Serving runs them.

A signature serves Classify when its ``method_name`` is ``tensorflow/serving/classify`` or
its shape is one (input ``inputs`` of serialized examples; outputs ``classes`` and/or
``scores``): TF Serving no longer checks method names by default, so TF2-native
classification signatures work too. Regress likewise, with the one output ``outputs``.
The serialized examples go through the inference core as the signature's ``inputs``
tensor, one row per example, so they are batched, timed and counted like any request.
Messages follow TF Serving's (``classifier.cc``, ``regressor.cc``, ``multi_inference.cc``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

import numpy as np
from tensorflow.core.framework import types_pb2
from tensorflow.core.protobuf import meta_graph_pb2
from tensorflow_serving.apis import (
    classification_pb2,
    inference_pb2,
    input_pb2,
    model_pb2,
    regression_pb2,
)

from contract.layout import SIGNATURE
from service.errors import InvalidInputError, UnimplementedError
from service.inference.core import InferenceCore
from service.inference.request import InferenceRequest, InferenceResult, RequestScope, Timing
from service.protocols.tfserving.examples import serialized_examples

CLASSIFY_METHOD = "tensorflow/serving/classify"
REGRESS_METHOD = "tensorflow/serving/regress"
INPUTS, CLASSES, SCORES, OUTPUTS = "inputs", "classes", "scores", "outputs"
SignatureDef = meta_graph_pb2.SignatureDef


@dataclass(frozen=True)
class ExampleCall:
    """Where a tf.Example request goes and how it is run.

    ``signature`` is the resolved name (``serving_default`` for an empty one).
    """

    model: str
    version: int | None
    label: str | None
    signature: str
    timeout_s: float | None
    protocol: str
    metadata: Mapping[str, str]


def signature_def(core: InferenceCore, call: ExampleCall) -> SignatureDef:
    """The ``SignatureDef`` a call names, from the version that would serve it."""
    view = core.model_view(call.model, call.version, call.label)
    found = view.signature_defs.get(call.signature)
    if found is None:
        raise InvalidInputError(
            f"No signature was found with the name: {call.signature}; model {call.model} has "
            f"{sorted(view.signature_defs)}"
        )
    return found


def _check_input(name: str, signature: SignatureDef, what: str) -> None:
    if len(signature.inputs) != 1:
        raise InvalidInputError(
            f"Expected one input Tensor. Signature {name!r} has {len(signature.inputs)}"
        )
    info = signature.inputs.get(INPUTS)
    if info is None:
        raise InvalidInputError(
            f"No {what} inputs found in SignatureDef {name!r}: its input is "
            f"{next(iter(signature.inputs))!r}, expected 'inputs'"
        )
    if info.dtype != types_pb2.DT_STRING:
        raise InvalidInputError(
            f"signature {name!r} takes {types_pb2.DataType.Name(info.dtype)} 'inputs', not "
            "serialized tf.Example (DT_STRING); call :predict with its inputs instead"
        )


def is_classification(signature: SignatureDef) -> bool:
    """Whether a signature has the shape of a classification signature."""
    outputs = set(signature.outputs)
    return (
        set(signature.inputs) == {INPUTS}
        and signature.inputs[INPUTS].dtype == types_pb2.DT_STRING
        and bool(outputs & {CLASSES, SCORES})
        and outputs <= {CLASSES, SCORES}
    )


def check_classification(name: str, signature: SignatureDef) -> None:
    """Refuse a signature Classify cannot run (400 / INVALID_ARGUMENT, TF Serving's words)."""
    if signature.method_name != CLASSIFY_METHOD and not is_classification(signature):
        raise InvalidInputError(
            f"Expected classification signature method_name to be {CLASSIFY_METHOD}. Was: "
            f"{signature.method_name} (signature {name!r})"
        )
    _check_input(name, signature, "classification")
    if len(signature.outputs) not in (1, 2):
        raise InvalidInputError(
            f"Expected one or two output Tensors, found {len(signature.outputs)}"
        )
    if not set(signature.outputs) & {CLASSES, SCORES}:
        raise InvalidInputError(
            'Expected classification signature outputs to contain at least one of "classes" '
            f'or "scores". Signature {name!r} has {sorted(signature.outputs)}'
        )


def check_regression(name: str, signature: SignatureDef) -> None:
    """Refuse a signature Regress cannot run (400 / INVALID_ARGUMENT, TF Serving's words)."""
    shaped = set(signature.inputs) == {INPUTS} and set(signature.outputs) == {OUTPUTS}
    if signature.method_name != REGRESS_METHOD and not shaped:
        raise InvalidInputError(
            f"Expected regression signature method_name to be {REGRESS_METHOD}. Was: "
            f"{signature.method_name} (signature {name!r})"
        )
    _check_input(name, signature, "regression")
    if set(signature.outputs) != {OUTPUTS}:
        raise InvalidInputError(
            f"Expected one output Tensor named 'outputs'; signature {name!r} has "
            f"{sorted(signature.outputs)}"
        )


def classification_result(
    outputs: Mapping[str, np.ndarray], rows: int
) -> classification_pb2.ClassificationResult:
    """Per example, every (label, score) pair the signature's outputs hold."""
    classes, scores = outputs.get(CLASSES), outputs.get(SCORES)
    for array, what in ((classes, "classes"), (scores, "scores")):
        if array is None:
            continue
        if array.ndim != 2:
            raise InvalidInputError(
                f"Expected Tensor shape: [batch_size num_classes] but got {list(array.shape)} "
                f"for {what}"
            )
        if array.shape[0] != rows:
            raise InvalidInputError(
                f"Expected {what} output batch size of {rows}. Got: {array.shape[0]}"
            )
    if scores is not None and scores.dtype != np.float32:
        raise InvalidInputError(f"Expected scores Tensor of DT_FLOAT. Got: {scores.dtype}")
    if classes is not None and classes.dtype != object:
        raise InvalidInputError(f"Expected classes Tensor of DT_STRING. Got: {classes.dtype}")
    if classes is not None and scores is not None and classes.shape[1] != scores.shape[1]:
        raise InvalidInputError(
            "Tensors class and score should match in dim_size(1). Got "
            f"{classes.shape[1]} vs. {scores.shape[1]}"
        )
    count = (classes if classes is not None else scores).shape[1]  # type: ignore[union-attr]
    result = classification_pb2.ClassificationResult()
    for row in range(rows):
        found = result.classifications.add().classes
        for column in range(count):
            item = found.add()
            if classes is not None:
                item.label = bytes(classes[row, column]).decode("utf-8", "replace")
            if scores is not None:
                item.score = scores[row, column]
    return result


def regression_result(
    outputs: Mapping[str, np.ndarray], rows: int
) -> regression_pb2.RegressionResult:
    """One value per example from the signature's ``outputs`` ([rows] or [rows, 1])."""
    values = outputs[OUTPUTS]
    if not (values.ndim == 1 or (values.ndim == 2 and values.shape[1] == 1)):
        raise InvalidInputError(
            "Expected output Tensor shape to be either [batch_size] or [batch_size, 1] but "
            f"got {list(values.shape)}"
        )
    if values.shape[0] != rows:
        raise InvalidInputError(
            f"Input batch size did not match output batch size: {rows} vs. {values.shape[0]}"
        )
    if values.dtype != np.float32:
        raise InvalidInputError(f"Expected output Tensor of DT_FLOAT. Got: {values.dtype}")
    result = regression_pb2.RegressionResult()
    result.regressions.extend(regression_pb2.Regression(value=v) for v in values.reshape(-1))
    return result


def model_spec(result: InferenceResult) -> model_pb2.ModelSpec:
    """The ``model_spec`` TF Serving echoes: name, signature name and the version served."""
    spec = model_pb2.ModelSpec(name=result.model, signature_name=result.signature)
    spec.version.value = result.version
    return spec


async def run_examples(
    scope: RequestScope, call: ExampleCall, rows: np.ndarray
) -> tuple[InferenceResult, Timing]:
    """Run serialized examples through a signature's ``inputs`` via the core."""
    request = InferenceRequest(
        call.model,
        {INPUTS: rows},
        version=call.version,
        label=call.label,
        signature=call.signature,
        timeout_s=call.timeout_s,
        protocol=call.protocol,
        metadata=call.metadata,
    )
    return await scope.infer(request, _unchanged)


def _unchanged(result: InferenceResult) -> InferenceResult:
    return result


async def classify(
    core: InferenceCore, scope: RequestScope, call: ExampleCall, request_input: input_pb2.Input
) -> tuple[classification_pb2.ClassificationResult, InferenceResult, Timing]:
    """TF Serving's Classify: check the signature, run the examples, read the classes."""
    check_classification(call.signature, signature_def(core, call))
    rows = serialized_examples(request_input)
    result, timing = await run_examples(scope, call, rows)
    return classification_result(result.outputs, len(rows)), result, timing


async def regress(
    core: InferenceCore, scope: RequestScope, call: ExampleCall, request_input: input_pb2.Input
) -> tuple[regression_pb2.RegressionResult, InferenceResult, Timing]:
    """TF Serving's Regress: check the signature, run the examples, read the values."""
    check_regression(call.signature, signature_def(core, call))
    rows = serialized_examples(request_input)
    result, timing = await run_examples(scope, call, rows)
    return regression_result(result.outputs, len(rows)), result, timing


def _task_methods(
    core: InferenceCore, call: ExampleCall, tasks: list[inference_pb2.InferenceTask]
) -> list[tuple[str, str]]:
    """(signature, method) per task, after TF Serving's checks of a MultiInferenceRequest."""
    view = core.model_view(call.model, call.version, call.label)
    checked: list[tuple[str, str]] = []
    input_tensor = None
    for task in tasks:
        if not task.model_spec.name:
            raise InvalidInputError("Found ModelSpec with an empty model name.")
        if task.model_spec.name != call.model:
            raise InvalidInputError(
                "All ModelSpecs in a MultiInferenceRequest must access the same model name."
            )
        name = task.model_spec.signature_name or SIGNATURE
        if name in (seen[0] for seen in checked):
            raise InvalidInputError(f"Duplicate evaluation of signature: {name}")
        signature = view.signature_defs.get(name)
        if signature is None:
            raise InvalidInputError(f"Requested signature not found in model graph: {name}")
        if task.method_name == CLASSIFY_METHOD:
            check_classification(name, signature)
        elif task.method_name == REGRESS_METHOD:
            check_regression(name, signature)
        else:
            raise UnimplementedError(
                f"Unsupported signature method_name: {task.method_name!r}; expected "
                f"{CLASSIFY_METHOD} or {REGRESS_METHOD}"
            )
        if input_tensor not in (None, signature.inputs[INPUTS].name):
            raise InvalidInputError("Input tensor must be the same for all Signatures.")
        input_tensor = signature.inputs[INPUTS].name
        checked.append((name, task.method_name))
    return checked


async def multi_inference(
    core: InferenceCore,
    scope: RequestScope,
    call: ExampleCall,
    request: inference_pb2.MultiInferenceRequest,
) -> tuple[inference_pb2.MultiInferenceResponse, Timing]:
    """Every task of a MultiInferenceRequest over the same examples and the same version.

    ``call`` names the first task's model and version choice. Each task's signature runs
    through the core in turn (TF Serving fetches every output in one session run; the
    answers are the same), pinned to the version the first task resolved.
    """
    if not request.tasks:
        raise InvalidInputError("MultiInferenceRequest has no tasks; expected at least one")
    methods = _task_methods(core, call, list(request.tasks))
    rows = serialized_examples(request.input)
    response = inference_pb2.MultiInferenceResponse()
    timing = Timing()
    for name, method in methods:
        result, timing = await run_examples(scope, replace(call, signature=name), rows)
        call = replace(call, version=result.version, label=None)
        answer = response.results.add()
        answer.model_spec.CopyFrom(model_spec(result))
        if method == CLASSIFY_METHOD:
            answer.classification_result.CopyFrom(classification_result(result.outputs, len(rows)))
        else:
            answer.regression_result.CopyFrom(regression_result(result.outputs, len(rows)))
    return response, timing
