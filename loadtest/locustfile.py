"""Locust load test of primer-serving over TF Serving REST, TF Serving gRPC and KServe v2 gRPC.

Headless, bounded, with CSV and HTML reports (``make loadtest`` does this)::

    locust -f loadtest/locustfile.py --headless --host http://127.0.0.1:8501 \\
        -u 32 -r 8 -t 60s --csv reports/locust --html reports/locust.html

Web UI: drop ``--headless``/``-u``/``-r``/``-t`` and open http://127.0.0.1:8089.

Users (pick with class names on the command line, default all):
``RestUser`` — ``:predict`` with JSON ``instances``, ``:predict`` with a ``{"b64": PNG}``
image, ``:classify`` with a raw PNG body; ``GrpcUser`` — TF Serving ``Predict`` and KServe v2
``ModelInfer``. Options (flag or environment variable):

* ``--model`` / ``LOCUST_MODEL`` (default ``mnist_dnn``);
  ``--model-version`` / ``LOCUST_MODEL_VERSION`` (default: latest)
* ``--mix`` / ``LOCUST_MIX``: task weights, default
  ``instances=4,b64=2,classify=2,grpc_predict=4,v2_infer=4`` (0 or absent turns a task off;
  b64 and classify need a model with an image contract)
* ``--rows`` / ``LOCUST_ROWS``: rows per tensor request; ``--image-dir`` / ``LOCUST_IMAGE_DIR``
* ``--grpc-target`` / ``LOCUST_GRPC_TARGET`` (default: the REST host on port 8500)
* ``--think-ms`` / ``LOCUST_THINK_MS``: pause between a user's requests (default 0)
* Step load: ``LOCUST_SHAPE=step`` with ``--step-users``, ``--step-seconds``, ``--steps``.
"""

from __future__ import annotations

import base64
import io
import json
import os
import random
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from urllib.parse import urlsplit

import grpc
import grpc.experimental.gevent as grpc_gevent
import numpy as np
from locust import HttpUser, LoadTestShape, User, events
from locust.env import Environment

grpc_gevent.init_gevent()  # gRPC's I/O cooperates with Locust's gevent loop

DEFAULT_MIX = "instances=4,b64=2,classify=2,grpc_predict=4,v2_infer=4"
DATA_DIR = Path(__file__).resolve().parent / "data"
_DTYPES = {
    "DT_FLOAT": np.float32,
    "DT_DOUBLE": np.float64,
    "DT_INT32": np.int32,
    "DT_INT64": np.int64,
    "DT_UINT8": np.uint8,
}
_V2_TYPES = {
    np.float32: "FP32",
    np.float64: "FP64",
    np.int32: "INT32",
    np.int64: "INT64",
    np.uint8: "UINT8",
}


@events.init_command_line_parser.add_listener
def _add_options(parser: Any) -> None:
    add = parser.add_argument
    add("--model", env_var="LOCUST_MODEL", default="mnist_dnn", help="model to load")
    add(
        "--model-version",
        env_var="LOCUST_MODEL_VERSION",
        default="",
        help="version to address (default: latest)",
    )
    add("--mix", env_var="LOCUST_MIX", default=DEFAULT_MIX, help="task weights name=w,...")
    add("--rows", env_var="LOCUST_ROWS", type=int, default=1, help="rows per tensor request")
    add(
        "--image-dir",
        env_var="LOCUST_IMAGE_DIR",
        default=str(DATA_DIR),
        help="PNG/JPEG files to send (default: loadtest/data; generated if empty)",
    )
    add(
        "--grpc-target",
        env_var="LOCUST_GRPC_TARGET",
        default="",
        help="host:port of the gRPC server (default: REST host, port 8500)",
    )
    add(
        "--think-ms",
        env_var="LOCUST_THINK_MS",
        type=float,
        default=0.0,
        help="pause between one user's requests, in ms",
    )
    add("--step-users", env_var="LOCUST_STEP_USERS", type=int, default=8)
    add("--step-seconds", env_var="LOCUST_STEP_SECONDS", type=float, default=15.0)
    add("--steps", env_var="LOCUST_STEPS", type=int, default=4)


# ----- the workload: model signature, payloads ---------------------------------------------
@dataclass
class Workload:
    """What every user sends, built once per process from the model's metadata."""

    model: str
    version: str
    input_name: str
    tensor: np.ndarray
    instances_body: bytes
    images: list[bytes]

    @property
    def rest_path(self) -> str:
        version = f"/versions/{self.version}" if self.version else ""
        return f"/v1/models/{self.model}{version}"


_workload: Workload | None = None


def workload(environment: Environment, host: str) -> Workload:
    """The shared workload (read from ``GET /v1/models/<model>/metadata`` on first use)."""
    global _workload
    if _workload is None:
        options = environment.parsed_options
        with urllib.request.urlopen(
            f"{host}/v1/models/{options.model}/metadata", timeout=30
        ) as response:
            metadata = json.load(response)
        signature = metadata["metadata"]["signature_def"]["signature_def"]["serving_default"]
        name, spec = next(iter(signature["inputs"].items()))
        dims = [int(d["size"]) for d in spec["tensor_shape"]["dim"]][1:]
        dtype = _DTYPES.get(spec["dtype"], np.float32)
        tensor = np.random.default_rng(0).random([options.rows, *dims]).astype(dtype)
        body = json.dumps({"instances": tensor.tolist()}).encode()
        _workload = Workload(
            options.model,
            options.model_version,
            name,
            tensor,
            body,
            load_images(Path(options.image_dir)),
        )
    return _workload


def load_images(folder: Path) -> list[bytes]:
    """The sample images of ``folder``, or one digit-like PNG drawn in memory."""
    files = sorted([*folder.glob("*.png"), *folder.glob("*.jp*g")]) if folder.is_dir() else []
    if files:
        return [f.read_bytes() for f in files]
    from PIL import Image, ImageDraw

    image = Image.new("L", (28, 28))
    ImageDraw.Draw(image).ellipse((7, 4, 21, 24), outline=255, width=3)  # a zero
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return [buffer.getvalue()]


def task_weights(mix: str, names: tuple[str, ...]) -> dict[str, int]:
    """``name=weight`` pairs of ``mix`` restricted to ``names`` (unknown names refused)."""
    weights = {}
    for item in filter(None, (part.strip() for part in mix.split(","))):
        name, _, weight = item.partition("=")
        weights[name.strip()] = int(weight or 1)
    unknown = set(weights) - set(ALL_TASKS)
    if unknown:
        raise ValueError(f"unknown task(s) {sorted(unknown)} in mix; known: {ALL_TASKS}")
    return {name: weights.get(name, 0) for name in names}


def weighted(user_class: type[User], mix: str, names: tuple[str, ...]) -> None:
    """Give ``user_class`` its tasks, each repeated by its weight (Locust's own scheme)."""
    tasks: list[Callable[..., Any]] = []
    for name, weight in task_weights(mix, names).items():
        tasks += [getattr(user_class, name)] * weight
    user_class.tasks = tasks or [user_class.idle]


@events.init.add_listener
def _configure(environment: Environment, **_: Any) -> None:
    options = environment.parsed_options
    if options is None:
        return
    weighted(RestUser, options.mix, REST_TASKS)
    weighted(GrpcUser, options.mix, GRPC_TASKS)
    if GrpcUser in (environment.user_classes or []):
        grpc_modules()  # import TensorFlow's protos now, not in the middle of the run


_grpc_modules: SimpleNamespace | None = None
_import_lock = threading.Lock()  # gevent-aware once Locust has monkey-patched threading


def grpc_modules() -> SimpleNamespace:
    """The TF Serving and KServe v2 protobuf modules, imported once (they load TensorFlow)."""
    global _grpc_modules
    with _import_lock:
        if _grpc_modules is None:
            from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2
            from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

            from service.protocols.kserve_v2.generated import grpc_predict_v2_pb2 as v2
            from service.protocols.kserve_v2.generated import grpc_predict_v2_pb2_grpc as v2_grpc

            _grpc_modules = SimpleNamespace(
                tensor_pb2=tensor_pb2,
                tensor_shape_pb2=tensor_shape_pb2,
                types_pb2=types_pb2,
                predict_pb2=predict_pb2,
                prediction_service_pb2_grpc=prediction_service_pb2_grpc,
                v2=v2,
                v2_grpc=v2_grpc,
            )
    return _grpc_modules


def think(user: User) -> float:
    return user.environment.parsed_options.think_ms / 1000


# ----- REST -----------------------------------------------------------------------------------
class RestUser(HttpUser):
    """TF Serving REST: JSON instances, b64 images and raw-image :classify."""

    wait_time = think

    def on_start(self) -> None:
        self.work = workload(self.environment, self.host)

    def _post(self, name: str, path: str, body: bytes, content_type: str) -> None:
        with self.client.post(
            path, data=body, headers={"content-type": content_type}, name=name, catch_response=True
        ) as response:
            if response.status_code != 200:
                response.failure(f"{response.status_code}: {response.text[:200]}")
            elif b'"predictions"' not in response.content:
                response.failure(f"no predictions in {response.text[:200]}")

    def instances(self) -> None:
        self._post(
            "REST predict instances",
            f"{self.work.rest_path}:predict",
            self.work.instances_body,
            "application/json",
        )

    def b64(self) -> None:
        image = base64.b64encode(random.choice(self.work.images)).decode()
        body = json.dumps({"instances": [{"b64": image}]}).encode()
        self._post("REST predict b64", f"{self.work.rest_path}:predict", body, "application/json")

    def classify(self) -> None:
        self._post(
            "REST classify png",
            f"{self.work.rest_path}:classify",
            random.choice(self.work.images),
            "image/png",
        )

    def idle(self) -> None:
        """Placeholder task when the mix gives this user none."""
        time.sleep(1)


# ----- gRPC -----------------------------------------------------------------------------------
class GrpcUser(User):
    """TF Serving gRPC Predict and KServe v2 ModelInfer (tensor_content / raw contents)."""

    wait_time = think

    def on_start(self) -> None:
        m = grpc_modules()
        tensor_pb2, tensor_shape_pb2, types_pb2 = m.tensor_pb2, m.tensor_shape_pb2, m.types_pb2
        predict_pb2, v2 = m.predict_pb2, m.v2
        self.work = work = workload(self.environment, self.host)
        target = self.environment.parsed_options.grpc_target or (
            f"{urlsplit(self.host).hostname}:8500"
        )
        self.channel = grpc.insecure_channel(target)
        self.tfs = m.prediction_service_pb2_grpc.PredictionServiceStub(self.channel)
        self.v2 = m.v2_grpc.GRPCInferenceServiceStub(self.channel)
        tensor = work.tensor
        dtype = next(k for k, v in _DTYPES.items() if v == tensor.dtype.type)
        proto = tensor_pb2.TensorProto(
            dtype=types_pb2.DataType.Value(dtype),
            tensor_content=tensor.tobytes(),
            tensor_shape=tensor_shape_pb2.TensorShapeProto(
                dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=s) for s in tensor.shape]
            ),
        )
        self.predict_request = predict_pb2.PredictRequest(inputs={work.input_name: proto})
        self.predict_request.model_spec.name = work.model
        self.predict_request.model_spec.signature_name = "serving_default"
        if work.version:
            self.predict_request.model_spec.version.value = int(work.version)
        self.infer_request = v2.ModelInferRequest(
            model_name=work.model,
            model_version=work.version,
            inputs=[
                v2.ModelInferRequest.InferInputTensor(
                    name=work.input_name,
                    datatype=_V2_TYPES[tensor.dtype.type],
                    shape=list(tensor.shape),
                )
            ],
            raw_input_contents=[tensor.tobytes()],
        )

    def on_stop(self) -> None:
        self.channel.close()

    def _call(self, name: str, method: Callable[..., Any], request: Any) -> None:
        started = time.perf_counter()
        response, error = None, None
        try:
            response = method(request, timeout=30)
        except grpc.RpcError as exc:
            error = exc
        self.environment.events.request.fire(
            request_type="grpc",
            name=name,
            context={},
            response_time=(time.perf_counter() - started) * 1000,
            response_length=response.ByteSize() if response is not None else 0,
            response=response,
            exception=error,
        )

    def grpc_predict(self) -> None:
        self._call("gRPC TFS Predict", self.tfs.Predict, self.predict_request)

    def v2_infer(self) -> None:
        self._call("gRPC v2 ModelInfer", self.v2.ModelInfer, self.infer_request)

    def idle(self) -> None:
        """Placeholder task when the mix gives this user none."""
        time.sleep(1)


REST_TASKS = ("instances", "b64", "classify")
GRPC_TASKS = ("grpc_predict", "v2_infer")
ALL_TASKS = REST_TASKS + GRPC_TASKS


# ----- load shape ----------------------------------------------------------------------------
class StepLoadShape(LoadTestShape):
    """Adds ``--step-users`` users every ``--step-seconds``, ``--steps`` times, then stops.

    Active only with ``LOCUST_SHAPE=step`` (or when picked in the web UI's class picker).
    """

    abstract = os.environ.get("LOCUST_SHAPE", "").lower() != "step"

    def tick(self) -> tuple[int, float] | None:
        options = self.runner.environment.parsed_options
        step = int(self.get_run_time() // options.step_seconds)
        if step >= options.steps:
            return None
        return (step + 1) * options.step_users, float(options.step_users)
