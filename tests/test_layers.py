"""The dependency rules between ``contract``, the service's layers and ``training`` hold.

The rules are import-linter contracts in ``pyproject.toml`` (``[tool.importlinter]``); a
wrong import anywhere fails this test and so ``make test``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO_ROOT

LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def _lint(root: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--config", str(root / "pyproject.toml"), "--no-cache"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_every_dependency_rule_is_kept() -> None:
    result = _lint(REPO_ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_a_wrong_import_breaks_a_rule(tmp_path: Path) -> None:
    """The rules are not vacuous: the same tree with one forbidden import fails."""
    for package in ("contract", "service", "training"):
        shutil.copytree(
            REPO_ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    shutil.copy(REPO_ROOT / "pyproject.toml", tmp_path)
    adapter = tmp_path / "service" / "protocols" / "tfserving" / "status.py"
    adapter.write_text(adapter.read_text() + "\nfrom service.models.manager import ModelManager\n")
    layout = tmp_path / "contract" / "layout.py"
    layout.write_text(layout.read_text() + "\nimport grpc\n")
    result = _lint(tmp_path)
    assert result.returncode != 0
    assert "protocol adapters use the core's API, never the models' types BROKEN" in result.stdout
    assert "contract imports nothing of ours, and neither gRPC nor TensorFlow BROKEN" in (
        result.stdout
    )
