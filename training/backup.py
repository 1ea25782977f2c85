"""``--backup-dir``: what a backup belongs to, checked before TensorFlow starts.

The custom loop (:mod:`training.loop`) keeps its backup with ``tf.train.CheckpointManager``:
the model, the optimizer, the epoch reached, early stopping's best weights and patience
count, and the history so far. Beside the checkpoints the chief writes ``backup.json``,
naming the architecture, input shape, class count and stages. A run pointed at a backup of
another run (another architecture, shape, head or stage plan) is refused with one line
before any training, rather than failing deep inside a checkpoint restore.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

MANIFEST = "backup.json"


class BackupError(ValueError):
    """The backup directory belongs to another run, or cannot be read."""


def manifest(
    architecture: str, input_shape: tuple[int, ...], classes: int, stages: list[dict[str, Any]]
) -> dict[str, Any]:
    """What identifies the run a backup can resume."""
    return {
        "architecture": architecture,
        "input_shape": list(input_shape),
        "classes": classes,
        "stages": stages,
    }


def check_backup(backup_dir: Path, expected: dict[str, Any]) -> bool:
    """Whether ``backup_dir`` holds a backup to resume; refuses one of another run.

    Raises:
        BackupError: the manifest is unreadable, or differs from ``expected``.
    """
    path = backup_dir / MANIFEST
    if not path.exists():
        if backup_dir.is_dir() and any(p.name.startswith("ckpt") for p in backup_dir.iterdir()):
            raise BackupError(f"--backup-dir {backup_dir} has checkpoints but no {MANIFEST}")
        return False
    try:
        found = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise BackupError(f"--backup-dir {backup_dir}: cannot read {MANIFEST}: {exc}") from None
    for key, value in expected.items():
        if found.get(key) != value:
            raise BackupError(
                f"--backup-dir {backup_dir} holds a backup of another run: its {key} is "
                f"{found.get(key)!r}, this run's is {value!r}; give an empty or new "
                f"--backup-dir, or the options of the run that wrote it"
            )
    return True


def write_manifest(backup_dir: Path, content: dict[str, Any]) -> None:
    """Write ``backup.json`` atomically (temporary file, then rename)."""
    backup_dir.mkdir(parents=True, exist_ok=True)
    staging = backup_dir / f".{MANIFEST}.tmp"
    staging.write_text(json.dumps(content, indent=2) + "\n", encoding="utf-8")
    os.replace(staging, backup_dir / MANIFEST)
