"""Version folders of a model in a TF Serving model repository (no TensorFlow needed).

``<model_dir>/<name>/<version>/``: a version is an all-digit folder name > 0, and the
highest is the latest. Anything else — notably the exporter's dot-prefixed
``.tmp-export-*`` staging folders — is not a version.
"""

from __future__ import annotations

import re
from pathlib import Path

from service.model_card import MODEL_NAME

_VERSION = re.compile(r"[0-9]+")


class ExportError(Exception):
    """The export cannot be done (e.g. the pinned version already exists)."""


def check_model_name(name: str) -> str:
    """Refuse a model name that is not a plain folder name the service would serve.

    Raises:
        ExportError: with the rule the name breaks.
    """
    if not MODEL_NAME.fullmatch(name):
        raise ExportError(
            f"model name {name!r} is not valid; expected letters, digits, '_', '.', '-' "
            f"(at most 128, starting with a letter or digit)"
        )
    return name


def list_versions(model_base: str | Path) -> list[int]:
    """The published versions under ``<model_dir>/<name>``, ascending."""
    base = Path(model_base)
    if not base.is_dir():
        return []
    return sorted(
        int(p.name)
        for p in base.iterdir()
        if p.is_dir() and _VERSION.fullmatch(p.name) and int(p.name) > 0
    )


def next_version(model_base: str | Path) -> int:
    """One more than the highest published version (1 for a new model)."""
    versions = list_versions(model_base)
    return versions[-1] + 1 if versions else 1


def check_version_free(model_base: str | Path, version: int) -> None:
    """Refuse a pinned version that is not a positive integer or already exists.

    Raises:
        ExportError: naming the folder that is in the way.
    """
    if version <= 0:
        raise ExportError(f"version must be a positive integer, got {version}")
    target = Path(model_base) / str(version)
    if target.exists():
        raise ExportError(
            f"version {version} already exists at {target}; choose another "
            f"--version or omit it to take the next ({next_version(model_base)})"
        )
