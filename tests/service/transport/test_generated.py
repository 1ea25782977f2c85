"""The committed generated protobuf code matches a fresh generation from protos/."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO_ROOT


def test_generated_code_is_up_to_date() -> None:
    result = subprocess.run(
        ["bash", str(REPO_ROOT / "tools" / "check_generated.sh")],
        capture_output=True,
        text=True,
        timeout=120,
        env={"PYTHON": sys.executable, "PATH": "/usr/bin:/bin"},
        cwd=Path(REPO_ROOT),
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_generated_code_imports_beside_tritonclient() -> None:
    """Both register `inference.*` messages; the private descriptor pool avoids the clash."""
    import tritonclient.grpc  # noqa: F401  (registers its protos in the default pool)

    from service.protocols.kserve_v2.generated import grpc_predict_v2_pb2

    assert grpc_predict_v2_pb2.ModelInferRequest(model_name="m").model_name == "m"
