"""The bench's scenarios: models, request bodies, and the commands of the servers it drives."""

from __future__ import annotations

import base64
import io
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from loadtest.grpc_clients import infer_request_bytes, predict_request_bytes
from loadtest.wrk import LoadResult, run_wrk

ROOT = Path(__file__).resolve().parent.parent
MNIST_NPZ = ROOT.parent / "shared" / "data" / "mnist.npz"
SERVER_CONFIG = """
batching: {max_queue_size: 1024}
models:
  resnet50:
    batching: {max_batch_size: %(resnet_batch)d, batch_timeout_ms: 20.0, max_queue_size: 256}
"""


@dataclass(frozen=True)
class Scenario:
    """One model + payload form driven through the server (and the naive baseline)."""

    name: str
    model: str
    body: Path
    seconds: float
    naive: bool
    endpoint: str = ""
    """The path posted to; TF Serving's ``/v1/models/<model>:predict`` when empty."""
    content_type: str = "application/json"
    headers: tuple[tuple[str, str], ...] = ()

    def url(self, port: int) -> str:
        return f"http://127.0.0.1:{port}{self.endpoint or f'/v1/models/{self.model}:predict'}"

    def run(self, url: str, concurrency: int, seconds: float) -> LoadResult:
        """Closed-loop wrk posts of this scenario's body (and headers) to ``url``."""
        return run_wrk(
            url,
            self.body,
            concurrency=concurrency,
            seconds=seconds,
            content_type=self.content_type,
            headers=dict(self.headers),
        )


# ----- models and payloads ----------------------------------------------------------------
def prepare_models(workdir: Path, mnist_model: Path) -> Path:
    """A model repository with the shipped mnist_dnn and a fresh random-init resnet50."""
    import keras

    from contract.model_card import ImageContract
    from training.export import export_model
    from training.models.architectures import resnet50

    repo = workdir / "models"
    shutil.copytree(mnist_model, repo / "mnist_dnn")
    keras.utils.set_random_seed(0)
    export_model(
        resnet50((224, 224, 3), 1000),
        model_dir=repo,
        name="resnet50",
        image=ImageContract(color_mode="rgb", height=224, width=224, resample="bilinear"),
        labels=[f"class_{i}" for i in range(1000)],
        provenance={"architecture": "resnet50", "dataset": "random-init"},
    )
    return repo


def mnist_digit() -> np.ndarray:
    """The first MNIST test digit as mnist_dnn takes it: (1, 28, 28) float32 in [0, 1]."""
    return (np.load(MNIST_NPZ)["x_test"][:1] / 255.0).astype(np.float32)


def v2_binary_body(name: str, array: np.ndarray) -> tuple[bytes, int]:
    """A KServe v2 REST request with ``array`` as binary tensor data (and binary outputs),
    and the length of its JSON header (the ``Inference-Header-Content-Length`` value)."""
    header = json.dumps(
        {
            "inputs": [
                {
                    "name": name,
                    "shape": list(array.shape),
                    "datatype": "FP32",
                    "parameters": {"binary_data_size": array.nbytes},
                }
            ],
            "parameters": {"binary_data_output": True},
        }
    ).encode()
    return header + array.astype(np.float32).tobytes(), len(header)


def v2_binary_scenario(workdir: Path, seconds: float) -> Scenario:
    """mnist_dnn over KServe v2 REST, the digit as binary tensor data (binary outputs too)."""
    body, header_length = v2_binary_body("image", mnist_digit())
    path = workdir / "mnist_v2_binary.bin"
    path.write_bytes(body)
    return Scenario(
        "mnist_v2_binary",
        "mnist_dnn",
        path,
        seconds,
        False,
        endpoint="/v2/models/mnist_dnn/infer",
        content_type="application/octet-stream",
        headers=(("Inference-Header-Content-Length", str(header_length)),),
    )


def write_payloads(workdir: Path) -> dict[str, Path]:
    """Request bodies: an MNIST digit as JSON, a photo-like JPEG as b64 and as floats."""
    from PIL import Image

    digits = np.load(MNIST_NPZ)["x_test"]
    mnist = {"instances": [np.round(digits[0] / 255.0, 4).tolist()]}
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 255, (256, 320, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=90)
    jpeg = {"instances": [{"b64": base64.b64encode(buffer.getvalue()).decode()}]}
    floats = {"instances": [np.round(rng.random((224, 224, 3)), 3).tolist()]}
    paths = {}
    for name, body in (("mnist_json", mnist), ("resnet_jpeg", jpeg), ("resnet_floats", floats)):
        paths[name] = workdir / f"{name}.json"
        paths[name].write_text(json.dumps(body))
    return paths


def grpc_bodies() -> dict[str, bytes]:
    """The mnist digit as a TF Serving Predict (``tensor_content``) and a v2 ModelInfer."""
    digit = mnist_digit()
    return {
        "tfserving": predict_request_bytes("mnist_dnn", "image", digit),
        "v2": infer_request_bytes("mnist_dnn", "image", digit),
    }


def serve_command(repo: Path, port: int, grpc_port: int, config: Path) -> list[str]:
    return [
        str(ROOT / ".venv" / "bin" / "primer-serve"),
        "--model-base-path",
        str(repo),
        "--rest-port",
        str(port),
        "--grpc-port",
        str(grpc_port),
        "--host",
        "127.0.0.1",
        "--config",
        str(config),
        "--poll-interval-s",
        "0",
        "--log-level",
        "WARNING",
    ]


def naive_command(version_dir: Path, port: int) -> tuple[list[str], dict[str, str]]:
    command = [
        str(ROOT / ".venv" / "bin" / "uvicorn"),
        "loadtest.naive_server:app",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--log-level",
        "warning",
        "--no-access-log",
    ]
    return command, {"MODEL_DIR": str(version_dir)}
