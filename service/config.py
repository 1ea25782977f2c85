"""Every knob of the server in one typed settings object.

Precedence: command-line flags > environment (``PRIMER_`` prefix, ``__`` for nesting,
e.g. ``PRIMER_MODELS__mnist_dnn__MAX_BATCH_SIZE=16``) > YAML file (``--config``) > defaults.
Nothing is read at import time: ``Settings.load`` is called by ``__main__``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

from contract.preprocessing import DEFAULT_MAX_PIXELS
from service.evaluation_settings import EvaluationSettings
from service.experiment_settings import RolloutSettings, ShadowSettings

VersionPolicy = Literal["latest", "all", "specific"]
SwapPolicy = Literal["availability", "resource"]
MemoryMode = Literal["throughput", "frugal"]
Runtime = Literal["tensorflow", "tflite", "tflite-fp16", "tflite-int8", "onnxruntime", "auto"]
STORAGE_SCHEMES = ("gs", "s3", "hdfs", "viewfs", "ram")
"""Filesystems (``tf.io.gfile``) a model base path may name besides local folders; web URLs
(``http://``, ``https://``, anything else) are refused: models are never fetched from a URL."""


def url_problem(path: str) -> str | None:
    """Why ``path`` may not hold models (a URL other than a TensorFlow filesystem), or None."""
    scheme, found, _ = path.partition("://")
    if found and scheme.lower() not in STORAGE_SCHEMES:
        return (
            "models are never loaded from URLs; use a local folder or one of "
            f"{', '.join(s + '://' for s in STORAGE_SCHEMES)}"
        )
    return None


class BatchingSettings(BaseModel):
    """Dynamic batching for one model version (TF Serving's batching parameters)."""

    enabled: bool = True
    """Batch concurrent requests; when off each request runs alone (still off the loop)."""
    max_batch_size: int = Field(64, ge=1)
    """Most rows one model call takes."""
    batch_timeout_ms: float = Field(5.0, ge=0)
    """Longest a formed-but-not-full batch waits for more rows before it runs."""
    batch_fill_gap_ms: float = Field(0.3, ge=0)
    """A filling batch also runs once no request has arrived for this long (0 = wait the
    full timeout, as TF Serving does): requests still arriving extend the wait up to
    ``batch_timeout_ms``; a burst that has ended does not. Timed to the microsecond (the
    batcher polls the event loop near the deadline), so sub-millisecond gaps work."""
    allowed_batch_sizes: list[int] | None = None
    """Pad every batch up to the next of these sizes (the last must equal max_batch_size)."""
    max_queue_size: int = Field(512, ge=1)
    """Requests waiting beyond this are turned away with 429 / RESOURCE_EXHAUSTED."""
    max_enqueued_batches: int = Field(8, ge=1)
    """Queued rows beyond this many full batches are turned away too (TF Serving's knob):
    it bounds the queueing delay of admitted requests to a few batch run times."""
    max_concurrent_batches: int = Field(1, ge=1)
    """Batches executing at once (1 lets the next batch fill while one runs)."""

    @field_validator("allowed_batch_sizes")
    @classmethod
    def _sorted_positive(cls, sizes: list[int] | None) -> list[int] | None:
        if sizes is None:
            return None
        if not sizes or any(s <= 0 for s in sizes) or sorted(sizes) != sizes:
            raise ValueError("allowed_batch_sizes must be positive and increasing")
        return sizes


class ModelSettings(BaseModel):
    """Per-model overrides from the YAML file (or nested env variables)."""

    version_policy: VersionPolicy = "latest"
    """Which versions to serve: the latest N, all, or a specific list."""
    latest: int = Field(1, ge=1)
    """N for the 'latest' policy."""
    versions: list[int] = Field(default_factory=list)
    """Versions for the 'specific' policy."""
    version_labels: dict[str, int] = Field(default_factory=dict)
    """Named versions, e.g. {'stable': 1, 'canary': 2} (TF Serving's version labels)."""
    device: str | None = None
    """Placement override: auto | cpu | gpu:N."""
    runtime: Runtime | None = None
    """Runtime override: tensorflow | tflite | tflite-fp16 | tflite-int8 | onnxruntime | auto."""
    batching: BatchingSettings | None = None
    """Batching override for this model."""
    swap_policy: SwapPolicy = "availability"
    """How a new version replaces an old one: ``availability`` loads the new version and
    unloads the old one only once the new one is AVAILABLE (two copies held for a moment);
    ``resource`` unloads the old version first, then loads the new one (one copy at most:
    requests get 503 with Retry-After in between). TF Serving's two policies."""
    memory_budget_bytes: int | None = Field(None, ge=1)
    """Most memory this model's versions may hold together, as estimated before each load
    (``memory_footprint_factor``); a version that would exceed it is refused. None: no
    per-model budget."""
    traffic: dict[str, float] = Field(default_factory=dict)
    """Weighted split of requests that name no version: {<version or label>: weight}."""
    sticky_key: str | None = Field(None, pattern=r"^header:[A-Za-z0-9_.-]+$")
    """'header:<name>': requests with that header (gRPC metadata) keep to one arm."""
    shadow: ShadowSettings | None = None
    """Mirror answered requests to a version, compare, never answer clients from it."""
    rollout: RolloutSettings | None = None
    """Canary rollout (overrides ``traffic`` while set)."""

    @model_validator(mode="after")
    def _check_traffic(self) -> ModelSettings:
        if self.shadow is not None:
            arms = {
                int(a) if a.isdigit() else self.version_labels.get(a)
                for a, w in self.traffic.items()
                if w > 0
            }
            if self.shadow.version in arms:
                raise ValueError(f"shadow version {self.shadow.version} is also a traffic arm")
        if not self.traffic:
            return self
        bad = {arm: w for arm, w in self.traffic.items() if not w >= 0}
        if bad:
            raise ValueError(f"traffic weights must not be negative, got {bad}")
        if not sum(self.traffic.values()) > 0:
            raise ValueError(f"traffic weights must sum to a positive number: {self.traffic}")
        unknown = [a for a in self.traffic if not a.isdigit() and a not in self.version_labels]
        if unknown:
            raise ValueError(
                f"traffic arms {unknown} are neither version numbers nor version labels "
                f"(labels: {sorted(self.version_labels)})"
            )
        return self


_DEFAULT_MODEL_SETTINGS = ModelSettings()
"""What ``Settings.for_model`` answers for a model with no overrides (built once: it is read
on every request)."""


class Settings(BaseSettings):
    """Server settings. Every field can be set by flag, ``PRIMER_<FIELD>`` env or YAML."""

    model_config = SettingsConfigDict(
        env_prefix="PRIMER_", env_nested_delimiter="__", extra="forbid", protected_namespaces=()
    )

    model_base_path: str = "models"
    """Folder holding <model>/<version>/ SavedModels."""
    host: str = "0.0.0.0"
    """Address the REST and gRPC servers bind to."""
    rest_port: int = Field(8501, ge=0, le=65535)
    """REST port (TF Serving REST, KServe v2 REST, /metrics); 0 picks a free port."""
    rest_enabled: bool = True
    """False: no REST listener at all, gRPC only (REST health, /metrics and the console go
    with it), as ``tensorflow_model_server --rest_api_port=0``."""
    grpc_port: int = Field(8500, ge=0, le=65535)
    """gRPC port (TF Serving and KServe v2 gRPC); 0 picks a free port."""
    poll_interval_s: float = Field(2.0, ge=0)
    """How often the model base path is rescanned; 0 turns polling off."""
    device: str = "auto"
    """Default placement for every model: auto (GPU when TensorFlow sees one) | cpu | gpu:N."""
    runtime: Runtime = "tensorflow"
    """Default runtime of every model (docs/variants.md); auto times the gated variants."""
    runtime_threads: int = Field(2, ge=1)
    """Threads of the TFLite interpreter and ONNX Runtime's intra-op pool."""
    gpu_memory_growth: bool = True
    """Let TensorFlow grow GPU memory on demand instead of taking it all at start."""
    intra_op_threads: int = Field(0, ge=0)
    """TensorFlow intra-op threads (0 = TensorFlow's default: one per core)."""
    inter_op_threads: int = Field(0, ge=0)
    """TensorFlow inter-op threads (0 = TensorFlow's default)."""
    batching: BatchingSettings = Field(default_factory=BatchingSettings)
    """Default batching for every model version."""
    memory_budget_bytes: int | None = Field(None, ge=1)
    """Most memory all loaded versions may hold together, as estimated before each load; a
    version that would exceed it is refused (RESOURCE_EXHAUSTED in its status) and the
    serving version keeps serving. None: no process budget."""
    memory_mode: MemoryMode = "throughput"
    """Both modes give an unloaded version's memory back (10 VGG16 swaps settle within 3%).
    ``throughput`` keeps TensorFlow's oneDNN kernels, with their buffers from malloc
    instead of oneDNN's pool (which never shrinks; about 10% faster on ResNet50), and maps
    each variable on its own while a version loads. ``frugal`` turns oneDNN off and maps
    every large tensor on its own: the least memory while serving, and faster small dense
    models, but convolutional models run at about a third of the speed on this project's
    CPU (docs/memory.md).
    Read at start only."""
    memory_footprint_factor: float = Field(1.2, gt=0)
    """A version's estimated memory = its variables' size on disk times this factor (measured:
    1.1 for a SavedModel of this project, docs/memory.md)."""
    model_paths: dict[str, str] | None = None
    """Only these models, each from its own folder of versions; None: all in model_base_path."""
    models: dict[str, ModelSettings] = Field(default_factory=dict)
    """Per-model overrides keyed by model name."""
    request_timeout_s: float = Field(30.0, gt=0)
    """Default deadline of a request that carries none (answered 504 past it)."""
    max_body_bytes: int = Field(32 * 1024 * 1024, ge=1)
    """Largest accepted REST request body (413 beyond)."""
    grpc_max_message_bytes: int = Field(64 * 1024 * 1024, ge=1)
    """Largest accepted gRPC message (RESOURCE_EXHAUSTED beyond)."""
    max_rows_per_request: int = Field(1024, ge=1)
    """Most rows (first dimension) in one request (413 beyond)."""
    max_image_pixels: int = Field(DEFAULT_MAX_PIXELS, ge=1)
    """Largest decoded image, in pixels, checked from the header before decoding."""
    shutdown_timeout_s: float = Field(30.0, ge=0)
    """On SIGTERM, how long admitted requests may take to finish."""
    rest_header_timeout_s: float = Field(15.0, gt=0)
    """Longest a REST client may take to send a request line and headers, counted from the
    connection (or the request's first byte on a kept-alive one); then 408 and closed. 15 s:
    64 KiB of headers cross a 56 kbit/s link in 9 s, and a slowloris holds a descriptor for
    at most 15 s (nginx's ``client_header_timeout`` is 60 s)."""
    rest_body_timeout_s: float = Field(30.0, gt=0)
    """Longest a REST client may take to send a request body once its headers are in; then
    408 and closed (a body trickled byte by byte cannot hold a connection). 30 s, the default
    request deadline: a body still arriving then could not be answered in time anyway."""
    rest_max_header_bytes: int = Field(64 * 1024, ge=1024)
    """Largest REST request line plus headers; 431 and closed beyond (Envoy: 60 KiB)."""
    rest_max_connections: int | None = Field(None, ge=1)
    """Most REST connections held at once; one more is answered 503 and closed at once.
    None: derived from the descriptor limit (``service.transport.connection_cap``)."""
    rest_keep_alive_timeout_s: float = Field(30.0, gt=0)
    """An idle kept-alive REST connection is closed after this long."""
    grpc_max_concurrent_streams: int = Field(100, ge=1)
    """Most concurrent gRPC calls (HTTP/2 streams) per connection; more wait for a free
    stream on the client (100 is HTTP/2's recommended minimum)."""
    grpc_min_ping_interval_s: float = Field(10.0, gt=0)
    """Least time between a client's keepalive pings; faster pings are strikes."""
    grpc_max_ping_strikes: int = Field(2, ge=0)
    """Pings too fast beyond this many: GOAWAY (ENHANCE_YOUR_CALM) closes the connection."""
    grpc_max_connection_idle_s: float = Field(300.0, gt=0)
    """A gRPC connection with no call for this long gets GOAWAY and is closed."""
    grpc_max_connection_age_s: float = Field(1800.0, gt=0)
    """A gRPC connection older than this gets GOAWAY, so long-lived clients reconnect and
    rebalance across replicas."""
    grpc_max_connection_age_grace_s: float = Field(30.0, ge=0)
    """After the age GOAWAY, calls in flight get this long to finish (the default request
    deadline) before the connection is closed."""
    grpc_max_connections: int | None = Field(None, ge=1)
    """Most gRPC connections held at once; more are closed on accept. None: derived from the
    descriptor limit (``service.transport.connection_cap``)."""
    grpc_connection_metrics: bool = True
    """Keep grpc core's channelz on (``grpc.enable_channelz``) and sample it every second
    into ``primer_open_connections{protocol="grpc"}`` and the gRPC closes of
    ``primer_connections_closed_total`` (``service.transport.grpc_connections``). Off: neither
    metric, and grpc core keeps no per-socket counters."""
    grpc_front_process: bool | Literal["auto"] = "auto"
    """Run grpc core and grpc.aio in a child process (``service.transport.grpc_front``) that
    forwards each unary call to this one, so gRPC's own per-call work (some 60-75 µs) runs
    beside the event loop instead of on it: 1.4x the gRPC throughput at c=32 on 2 cores, and
    about 0.2 ms more per call for a lone client. False: grpc.aio on the server's own loop,
    one process. ``auto``: the front when this process may use 2 CPUs or more (affinity and
    cgroup quota, ``service.transport.cpus``), since it needs a core beside the loop. Read at
    start only."""
    log_level: str = "INFO"
    """Python logging level."""
    log_json: bool = False
    """Write logs as JSON lines."""
    access_log: bool = False
    """Log one line per request (off by default: it costs throughput)."""
    rollout_control: bool = False
    """Serve the rollout pause/resume/abort endpoint (``/v1/experiments/<model>/rollout``)."""
    auth_token: SecretStr | None = None
    """Bearer token every REST and gRPC call must carry (``Authorization: Bearer <token>``;
    401 / UNAUTHENTICATED otherwise). Off when unset. Health checks stay open; set it through
    ``PRIMER_AUTH_TOKEN`` or the YAML file, never on a command line."""
    metrics_require_auth: bool = False
    """With ``auth_token`` set, also require the token on ``/metrics`` (open by default so a
    Prometheus scraper needs no secret)."""
    tls_cert_file: str | None = None
    """PEM certificate (chain) for TLS on both ports; plaintext when unset."""
    tls_key_file: str | None = None
    """PEM private key of ``tls_cert_file``."""
    evaluation: EvaluationSettings = Field(default_factory=EvaluationSettings)
    """Payload log and feedback (``docs/evaluation.md``)."""
    enable_serialization_as_tensor_content: bool = False
    """TF Serving gRPC Predict answers with raw ``tensor_content`` bytes instead of the typed
    repeated fields (``float_val``...), as TF Serving's flag of the same name (read at start)."""

    @field_validator("model_base_path")
    @classmethod
    def _no_urls(cls, path: str) -> str:
        if problem := url_problem(path):
            raise ValueError(f"model_base_path {path[:80]!r}: {problem}")
        return path

    @field_validator("auth_token")
    @classmethod
    def _token_not_empty(cls, token: SecretStr | None) -> SecretStr | None:
        if token is not None and not token.get_secret_value().strip():
            raise ValueError("auth_token is empty; leave it unset to turn auth off")
        return token

    @model_validator(mode="after")
    def _tls_pair(self) -> Settings:
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError("tls_cert_file and tls_key_file go together: set both or neither")
        for path in (self.tls_cert_file, self.tls_key_file):
            if path is not None and not Path(path).is_file():
                raise ValueError(f"TLS file {path} does not exist")
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return init_settings, env_settings, YamlConfigSettingsSource(settings_cls)

    @classmethod
    def load(cls, config_file: str | Path | None = None, **overrides: Any) -> Settings:
        """Build settings: ``overrides`` (CLI) > env > ``config_file`` (YAML) > defaults."""
        if config_file is not None and not Path(config_file).is_file():
            raise ValueError(f"config file {config_file} does not exist")

        class _FromFile(cls):  # type: ignore[valid-type,misc]
            model_config = SettingsConfigDict(yaml_file=config_file)

        explicit = {k: v for k, v in overrides.items() if v is not None}
        return _FromFile(**explicit)

    def for_model(self, name: str) -> ModelSettings:
        """The settings of one model (its overrides, or the defaults; not to be mutated)."""
        settings = self.models.get(name)
        return _DEFAULT_MODEL_SETTINGS if settings is None else settings

    def batching_for(self, name: str) -> BatchingSettings:
        """The batching settings of one model."""
        override = self.for_model(name).batching
        return override if override is not None else self.batching

    def runtime_for(self, name: str) -> str:
        """The runtime setting of one model."""
        return self.for_model(name).runtime or self.runtime

    def device_for(self, name: str) -> str:
        """The placement setting of one model."""
        return self.for_model(name).device or self.device
