"""The model repository's layout and naming rules (TF Serving's), written once.

``<base>/<model>/<version>/`` holds one SavedModel version: ``saved_model.pb`` and
``variables/``, plus ``assets.extra/`` with this project's contract files. A model name is
one plain folder name; a version is a positive integer of at most 18 digits (so it fits an
int64, as TF Serving's version numbers do); the highest is the latest. Anything else — the
exporter's dot-prefixed ``.tmp-export-*`` staging folders among them — is not a version.
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath

from contract.errors import InvalidModelNameError, InvalidVersionError

MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}")
"""A model name is one plain folder name: no paths, no control characters."""
VERSION = re.compile(r"[0-9]{1,18}")
"""A version folder's name (and a version in a URL): digits, at most 18, value above 0."""

SIGNATURE = "serving_default"
"""The signature every exported model serves, and the default of a request naming none."""
INPUT_NAME = "image"
"""The input of every exported model's signature (and the name of its input layer)."""
OUTPUT_NAME = "probabilities"
"""The output of every exported model's signature (and the name of its softmax layer)."""

SAVED_MODEL_FILE = "saved_model.pb"
ASSETS_EXTRA = PurePosixPath("assets.extra")
MODEL_CARD_PATH = ASSETS_EXTRA / "model.json"
WARMUP_PATH = ASSETS_EXTRA / "tf_serving_warmup_requests"
LABELS_PATH = ASSETS_EXTRA / "labels.txt"
VARIANT_FILES = {
    "tflite": "model.tflite",
    "tflite-fp16": "model-fp16.tflite",
    "tflite-int8": "model-int8.tflite",
    "onnxruntime": "model.onnx",
}
"""Deployment variants beside the SavedModel, by the runtime serving each (docs/variants.md)."""
STAGING_PREFIX = ".tmp-export-"
"""Exports are written into a folder with this prefix, then renamed to the version."""


def _shown(text: str, limit: int) -> str:
    """A client string cut and escaped for an error message."""
    return text[:limit].encode("unicode_escape").decode("ascii")


def is_model_name(name: str) -> bool:
    return MODEL_NAME.fullmatch(name) is not None


def check_model_name(name: str) -> str:
    """``name`` when it is a valid model name.

    Raises:
        InvalidModelNameError: with the rule the name breaks.
    """
    if not is_model_name(name):
        raise InvalidModelNameError(
            f"model name {_shown(name, 64)!r} is not valid; expected letters, digits, '_', "
            "'.', '-' (at most 128, starting with a letter or digit)"
        )
    return name


def is_version(text: str) -> bool:
    """Whether a folder name (or URL segment) is a version."""
    return VERSION.fullmatch(text) is not None and int(text) > 0


def parse_version(text: str) -> int:
    """A version from a folder name, URL or message.

    Raises:
        InvalidVersionError: not a positive integer of at most 18 digits.
    """
    if not is_version(text):
        raise InvalidVersionError(
            f"version {_shown(text, 32)!r} is not valid; expected a positive integer"
        )
    return int(text)
