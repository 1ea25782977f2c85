"""A request's inputs and outputs checked against the signature it names.

Pure functions over numpy arrays and ``service.views`` specs; each refusal is an
``InvalidInputError`` (or ``PayloadTooLargeError`` for a limit) saying what was expected.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from service.errors import InvalidInputError, PayloadTooLargeError
from service.views import SignatureSpec, TensorSpec

UNNAMED_INPUT = ""
"""Key of an input given without a name (TF Serving's single-input request forms)."""
Arrays = dict[str, np.ndarray]


def output_names(signature: SignatureSpec, wanted: Sequence[str] | None) -> list[str] | None:
    """The requested outputs in order, without repeats (None: every output)."""
    if not wanted:
        return None
    unknown = [name for name in wanted if name not in signature.outputs]
    if unknown:
        raise InvalidInputError(
            f"unknown output(s) {unknown}; signature {signature.name!r} has outputs "
            f"{sorted(signature.outputs)}"
        )
    return list(dict.fromkeys(wanted))


def named_inputs(model: str, signature: SignatureSpec, inputs: Arrays) -> Arrays:
    """``inputs`` keyed by the signature's names, the unnamed form resolved."""
    expected = signature.inputs
    if UNNAMED_INPUT in inputs:
        if len(inputs) != 1 or len(expected) != 1:
            raise InvalidInputError(
                f"an unnamed input needs a model with exactly one input; signature "
                f"{signature.name!r} of {model} has inputs {sorted(expected)}"
            )
        inputs = {next(iter(expected)): inputs[UNNAMED_INPUT]}
    if inputs.keys() != expected.keys():
        raise InvalidInputError(
            f"model {model} signature {signature.name!r} expects inputs "
            f"{sorted(expected)}; got {sorted(inputs)}"
        )
    return inputs


def row_count(inputs: Arrays, max_rows: int) -> int:
    """The rows (first dimension) every input shares, within ``max_rows``."""
    rows = {value.shape[0] for value in inputs.values()}
    if len(rows) != 1:
        raise InvalidInputError(
            f"inputs disagree on the batch size (first dimension): "
            f"{ {name: v.shape[0] for name, v in inputs.items()} }"
        )
    count = rows.pop()
    if count == 0:
        raise InvalidInputError("the request has no rows; expected at least one")
    if count > max_rows:
        raise PayloadTooLargeError(f"the request has {count} rows; the limit is {max_rows}")
    return count


def claimed_rows(inputs: Arrays) -> int:
    """The rows a request claims before it is checked (for load shedding)."""
    first = next(iter(inputs.values()), None)
    return 1 if first is None or first.ndim == 0 else max(1, int(first.shape[0]))


def output_rows(outputs: Arrays) -> int:
    first = next(iter(outputs.values()), None)
    return 0 if first is None or first.ndim == 0 else int(first.shape[0])


def bytes_array(items: Sequence[bytes]) -> np.ndarray:
    """A 1-D object array of ``bytes`` (a string tensor, e.g. encoded images)."""
    array = np.empty(len(items), dtype=object)
    array[:] = list(items)
    return array


def is_bytes_array(value: np.ndarray) -> bool:
    return value.dtype.kind == "S" or (
        value.dtype == object
        and value.size > 0
        and isinstance(value.reshape(-1)[0], bytes | bytearray)
    )


def image_batch(spec: TensorSpec, value: np.ndarray, max_rows: int) -> np.ndarray:
    """The encoded images of a bytes value given for a numeric (image) input."""
    images = value.reshape(-1)
    if value.ndim != 1 or len(images) == 0:
        raise InvalidInputError(
            f"image input {spec.name!r} expects a list of encoded images, got shape "
            f"{list(value.shape)}"
        )
    if len(images) > max_rows:
        raise PayloadTooLargeError(f"the request has {len(images)} images; the limit is {max_rows}")
    return images


def missing_unit_dims(spec: TensorSpec, value: np.ndarray) -> int:
    """How many trailing size-1 dimensions ``value`` lacks against ``spec`` (0: none).

    TF Serving feeds a JSON tensor to its session without a shape check, so its quickstart's
    ``{"instances": [1.0, 2.0, 5.0]}`` reaches ``x: [-1, 1]`` as shape ``[3]`` and the graph
    broadcasts. This names the same leniency: a batch given without the signature's trailing
    size-1 dimensions.
    """
    expected = spec.shape
    if expected is None or value.ndim == 0 or value.ndim >= len(expected):
        return 0
    if any(want != 1 for want in expected[value.ndim :]):
        return 0
    return len(expected) - value.ndim


def drop_unit_dims(outputs: Arrays, count: int) -> Arrays:
    """Outputs without the ``count`` trailing size-1 dimensions the lenient inputs gained."""
    return {
        name: value.reshape(value.shape[:-count])
        if value.ndim > count and all(size == 1 for size in value.shape[-count:])
        else value
        for name, value in outputs.items()
    }


def conform(
    model: str, spec: TensorSpec, value: np.ndarray, finite_only: bool = False
) -> np.ndarray:
    """Check dtype and shape of one numeric or string input against its spec.

    Args:
        model: names the model in error messages.
        spec: the signature's tensor.
        value: the decoded input.
        finite_only: refuse NaN and infinities (image models expect finite pixels).
    """
    if spec.is_string:
        if value.dtype.kind == "U":
            value = np.vectorize(lambda s: s.encode("utf-8"), otypes=[object])(value)
        elif value.dtype.kind not in "OS":
            raise InvalidInputError(
                f"input {spec.name!r} takes strings/bytes, got {value.dtype.name} values"
            )
    else:
        kind = value.dtype.kind
        if kind not in "biuf":
            raise InvalidInputError(
                f"input {spec.name!r} takes {spec.dtype_name} numbers, got "
                f"{'strings' if kind in 'USO' else value.dtype.name}"
            )
        target_kind = spec.dtype.kind
        if kind == "f" and target_kind in "iub":
            raise InvalidInputError(
                f"input {spec.name!r} takes {spec.dtype_name} integers, got floating-point values"
            )
        if value.dtype != spec.dtype:
            with np.errstate(over="ignore", invalid="ignore"):
                value = value.astype(spec.dtype)
        if target_kind == "f" and finite_only and not np.isfinite(value).all():
            raise InvalidInputError(
                f"input {spec.name!r} holds NaN or infinite values (or values beyond "
                f"{spec.dtype_name} range); image models expect finite pixel values"
            )
    expected = spec.shape
    missing = missing_unit_dims(spec, value)
    if missing:
        value = value.reshape(value.shape + (1,) * missing)
    if expected is not None and not (
        value.ndim == len(expected)
        and all(
            want is None or got == want
            for got, want in zip(value.shape[1:], expected[1:], strict=True)
        )
    ):
        raise InvalidInputError(
            f"input {spec.name!r} has shape {list(value.shape)}, model {model} "
            f"expects {spec.shape_for_display()}"
        )
    return value
