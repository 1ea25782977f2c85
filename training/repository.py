"""Version folders of a model in a TF Serving model repository (no TensorFlow needed).

The naming rules are ``contract.layout``'s, the same the server scans with: a version is a
positive integer of at most 18 digits, the highest is the latest, and the exporter's
dot-prefixed ``.tmp-export-*`` staging folders are never versions.
"""

from __future__ import annotations

from pathlib import Path

from contract import layout
from contract.errors import InvalidModelNameError


class ExportError(Exception):
    """The export cannot be done (e.g. the pinned version already exists)."""


def check_model_name(name: str) -> str:
    """Refuse a model name that is not a plain folder name the service would serve.

    Raises:
        ExportError: with the rule the name breaks (``contract.layout``'s message).
    """
    try:
        return layout.check_model_name(name)
    except InvalidModelNameError as exc:
        raise ExportError(str(exc)) from None


def list_versions(model_base: str | Path) -> list[int]:
    """The published versions under ``<model_dir>/<name>``, ascending."""
    base = Path(model_base)
    if not base.is_dir():
        return []
    return sorted(int(p.name) for p in base.iterdir() if p.is_dir() and layout.is_version(p.name))


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
