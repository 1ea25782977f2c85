"""File access for the model repository through TensorFlow's filesystems (``tf.io.gfile``).

The model base path may be any filesystem TensorFlow supports — local folders by default,
``gs://`` for GCS-backed replicas, ``ram://`` in tests — as TF Serving allows. Local paths
are resolved so that a symlink cannot lead a version outside the base path.
"""

from __future__ import annotations

import contextlib
import os
import posixpath

import tensorflow as tf


def is_local(path: str) -> bool:
    """True for plain paths (no ``scheme://``)."""
    return "://" not in path


def join(base: str, *parts: str) -> str:
    return os.path.join(base, *parts) if is_local(base) else posixpath.join(base, *parts)


def resolve_base(path: str) -> str:
    """The canonical form of a base path (symlinks resolved for local paths)."""
    return os.path.realpath(path) if is_local(path) else path.rstrip("/")


def list_dirs(path: str) -> list[str]:
    """Names of the sub-folders of ``path`` ([] when it cannot be read)."""
    try:
        names = tf.io.gfile.listdir(path)
    except (tf.errors.OpError, OSError):
        return []
    return [name.rstrip("/") for name in names if tf.io.gfile.isdir(join(path, name.rstrip("/")))]


def inside(base: str, path: str) -> str | None:
    """``path`` resolved, or None when it escapes ``base`` (local symlinks)."""
    if not is_local(path):
        return path if path.startswith(base + "/") else None
    real = os.path.realpath(path)
    return real if os.path.commonpath([real, base]) == base else None


def exists(path: str) -> bool:
    return tf.io.gfile.exists(path)


def read_bytes(path: str) -> bytes:
    with tf.io.gfile.GFile(path, "rb") as handle:
        return handle.read()


def fingerprint(version_dir: str) -> tuple[int, ...]:
    """Modification stamps that change when a version's files are replaced."""
    stamps = []
    for name in ("saved_model.pb", "variables/variables.index"):
        with contextlib.suppress(tf.errors.OpError, OSError):
            stamps.append(int(tf.io.gfile.stat(join(version_dir, name)).mtime_nsec))
    return tuple(stamps)
