"""What the core shows of a model to the layers above it: plain data, no TensorFlow.

``models`` fills these in, ``inference`` hands them out, and the protocol adapters read
them, so no adapter needs a type of ``service.models``.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from contract.layout import SIGNATURE
from contract.model_card import ModelCard
from service.errors import InvalidInputError


class VersionState(enum.Enum):
    """Lifecycle of a version (TF Serving's states, plus FAILED for a load that failed)."""

    START = "START"
    LOADING = "LOADING"
    AVAILABLE = "AVAILABLE"
    UNLOADING = "UNLOADING"
    END = "END"
    FAILED = "FAILED"


@dataclass(frozen=True)
class TensorSpec:
    """One signature tensor: the key clients use, its dtype and shape (None = any size).

    Attributes:
        name: the signature's key for the tensor.
        dtype: numpy dtype (``object`` for strings).
        shape: dimensions, None for a variable one; None for an unknown rank.
        dtype_name: TensorFlow's name of the dtype (``float32``, ``string``...).
        tensor_name: the graph tensor behind the key (``x:0``), when known.
    """

    name: str
    dtype: np.dtype
    shape: tuple[int | None, ...] | None
    dtype_name: str
    tensor_name: str = ""
    is_string: bool = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "is_string", self.dtype_name == "string")  # read per request

    def shape_for_display(self) -> list[int]:
        return [-1 if d is None else d for d in self.shape or ()]


@dataclass(frozen=True)
class SignatureSpec:
    """A signature's name and its input and output tensors, keyed by client-facing name."""

    name: str
    inputs: dict[str, TensorSpec]
    outputs: dict[str, TensorSpec]


@dataclass(frozen=True)
class VersionStatus:
    """One version's state, and why it failed when it did."""

    version: int
    state: VersionState
    error: str = ""
    error_code: int = 2
    """The gRPC code of ``error`` (TF Serving reports UNKNOWN, 2, for a failed load;
    RESOURCE_EXHAUSTED, 8, is a version refused by the memory budget)."""


@dataclass(frozen=True)
class ModelView:
    """An AVAILABLE version as metadata endpoints describe it.

    Attributes:
        model: the model name.
        version: the version that would serve.
        signatures: every serving signature.
        signature_defs: the SavedModel's ``SignatureDef`` protos (TF Serving's metadata).
        card: ``model.json``, when the version ships one.
        runtime: the runtime serving it (``tensorflow``, ``tflite``, ``onnxruntime``...).
    """

    model: str
    version: int
    signatures: Mapping[str, SignatureSpec]
    signature_defs: Mapping[str, Any]
    card: ModelCard | None
    runtime: str = "tensorflow"

    def signature(self, name: str | None = None) -> SignatureSpec:
        """The named signature (``serving_default`` when none is named)."""
        key = name or SIGNATURE
        try:
            return self.signatures[key]
        except KeyError:
            raise InvalidInputError(
                f"signature {key!r} not found; the model has {sorted(self.signatures)}"
            ) from None
