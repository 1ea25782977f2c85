"""``contract`` imports in a process where gRPC, TensorFlow, the server and training cannot."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
BLOCKED = ("grpc", "tensorflow", "keras", "service", "training", "tensorflow_serving")

SCRIPT = textwrap.dedent(
    """
    import importlib.abc, io, sys

    BLOCKED = {blocked!r}

    class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED:
                raise ImportError(f"{{name}} is blocked in this test")
            return None

    sys.meta_path.insert(0, Block())
    import numpy as np
    from PIL import Image

    import contract, contract.errors, contract.layout, contract.model_card
    from contract.model_card import ImageContract
    from contract.preprocessing import preprocess_image

    buffer = io.BytesIO()
    Image.fromarray(np.full((4, 4), 255, np.uint8)).save(buffer, "PNG")
    row = preprocess_image(buffer.getvalue(), ImageContract("grayscale", 2, 2))
    assert row.shape == (2, 2, 1) and float(row.max()) == 1.0
    try:
        import grpc  # noqa: F401
    except ImportError:
        pass
    else:
        raise SystemExit("the blocker let grpc through")
    loaded = sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)
    print("loaded:", loaded)
    """
)


def test_contract_needs_neither_grpc_nor_tensorflow_nor_the_server() -> None:
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT.format(blocked=BLOCKED)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "loaded: []"
