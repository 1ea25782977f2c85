"""Security defaults: bearer-token auth and TLS on both protocols, no URLs, no escapes.

One server runs with TLS (a self-signed certificate made here with ``cryptography``) and a
bearer token; it is reached only over TLS with the certificate as the trusted root.
"""

from __future__ import annotations

import datetime
import io
import ipaddress
import os
import ssl
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import httpx
import numpy as np
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from pydantic import ValidationError
from tensorflow.core.framework import types_pb2
from tensorflow_serving.apis import prediction_service_pb2_grpc

from contract import preprocessing
from contract.errors import ImageError
from service.__main__ import build_parser
from service.config import Settings
from service.protocols.kserve_v2.generated import grpc_predict_v2_pb2 as pb
from service.protocols.kserve_v2.generated import grpc_predict_v2_pb2_grpc
from service.transport import auth
from tests import fixtures
from tests.conftest import ServerThread, make_settings
from tests.suites.reliability import images
from tests.suites.reliability.clients import predict_request, tensor_proto

TOKEN = "s3cret-token-for-tests"


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate for localhost and 127.0.0.1, and its key, as PEM files."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = directory / "cert.pem", directory / "key.pem"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


@pytest.fixture(scope="module")
def tls_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("tls")
    self_signed(directory)
    return directory


@pytest.fixture(scope="module")
def secure_server(
    tmp_path_factory: pytest.TempPathFactory, tls_dir: Path
) -> Iterator[ServerThread]:
    base = tmp_path_factory.mktemp("secure_models")
    fixtures.half_plus_two(base / "half_plus_two" / "1")
    settings = make_settings(
        base,
        auth_token=TOKEN,
        tls_cert_file=str(tls_dir / "cert.pem"),
        tls_key_file=str(tls_dir / "key.pem"),
    )
    thread = ServerThread(settings).start()
    yield thread
    thread.stop()


@pytest.fixture(scope="module")
def https(secure_server: ServerThread, tls_dir: Path) -> Iterator[httpx.Client]:
    url = f"https://127.0.0.1:{secure_server.server.rest_port}"
    trusted = ssl.create_default_context(cafile=str(tls_dir / "cert.pem"))
    with httpx.Client(base_url=url, verify=trusted, timeout=30) as client:
        yield client


@pytest.fixture(scope="module")
def secure_channel(secure_server: ServerThread, tls_dir: Path) -> Iterator[grpc.Channel]:
    credentials = grpc.ssl_channel_credentials((tls_dir / "cert.pem").read_bytes())
    with grpc.secure_channel(secure_server.grpc_target, credentials) as channel:
        yield channel


def bearer(token: str = TOKEN) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


PREDICT = "/v1/models/half_plus_two:predict"
BODY = {"instances": [[1.0, 2.0, 3.0]]}


# ----- REST ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({}, id="no-header"),
        pytest.param(bearer("wrong"), id="wrong-token"),
        pytest.param(bearer(TOKEN + "x"), id="token-prefix"),
        pytest.param({"authorization": f"Basic {TOKEN}"}, id="basic-scheme"),
        pytest.param({"authorization": TOKEN}, id="no-scheme"),
    ],
)
def test_rest_refuses_without_the_token(headers: dict[str, str], https) -> None:
    for method, path in (
        ("POST", PREDICT),
        ("GET", "/v1/models/half_plus_two"),
        ("GET", "/v2/models/half_plus_two"),
        ("GET", "/v2"),
        ("POST", "/v2/models/half_plus_two/infer"),
    ):
        response = https.request(method, path, json=BODY, headers=headers)
        assert response.status_code == 401, (path, response.text)
        assert response.headers["www-authenticate"] == "Bearer"
        assert "Authorization: Bearer" in response.json()["error"]


def test_rest_serves_with_the_token(https) -> None:
    response = https.post(PREDICT, json=BODY, headers=bearer())
    assert response.status_code == 200, response.text
    assert response.json() == {"predictions": [[2.5, 3.0, 3.5]]}
    lower = https.post(PREDICT, json=BODY, headers={"authorization": f"bearer {TOKEN}"})
    assert lower.status_code == 200  # the scheme is case-insensitive (RFC 7235)


def test_health_metrics_and_schema_stay_open(https) -> None:
    for path in ("/v2/health/live", "/v2/health/ready", "/metrics", "/openapi.json"):
        assert https.get(path).status_code == 200, path


def test_plain_http_to_the_tls_port_fails(secure_server) -> None:
    url = f"http://127.0.0.1:{secure_server.server.rest_port}/v2/health/live"
    with pytest.raises(httpx.HTTPError):
        httpx.get(url, timeout=5)


def test_untrusted_certificate_is_refused(secure_server) -> None:
    url = f"https://127.0.0.1:{secure_server.server.rest_port}/v2/health/live"
    with pytest.raises(httpx.ConnectError):
        httpx.get(url, timeout=5)  # the system roots do not know the self-signed cert


# ----- gRPC ---------------------------------------------------------------------------------
def predict(channel: grpc.Channel, metadata: list[tuple[str, str]]) -> Any:
    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    proto = tensor_proto(types_pb2.DT_FLOAT, [1, 3], float_val=[1, 2, 3])
    return stub.Predict(
        predict_request("half_plus_two", {"x": proto}), timeout=30, metadata=metadata
    )


@pytest.mark.parametrize(
    "metadata",
    [
        pytest.param([], id="no-metadata"),
        pytest.param([("authorization", "Bearer wrong")], id="wrong-token"),
        pytest.param([("authorization", TOKEN)], id="no-scheme"),
    ],
)
def test_grpc_refuses_without_the_token(metadata: list[tuple[str, str]], secure_channel) -> None:
    with pytest.raises(grpc.RpcError) as info:
        predict(secure_channel, metadata)
    assert info.value.code() is grpc.StatusCode.UNAUTHENTICATED
    assert "Authorization: Bearer" in info.value.details()
    v2 = grpc_predict_v2_pb2_grpc.GRPCInferenceServiceStub(secure_channel)
    with pytest.raises(grpc.RpcError) as info:
        v2.ModelMetadata(
            pb.ModelMetadataRequest(name="half_plus_two"), timeout=30, metadata=metadata
        )
    assert info.value.code() is grpc.StatusCode.UNAUTHENTICATED
    reflection = reflection_pb2_grpc.ServerReflectionStub(secure_channel)
    replies = reflection.ServerReflectionInfo(
        iter([reflection_pb2.ServerReflectionRequest(list_services="")]),
        timeout=30,
        metadata=metadata,
    )
    with pytest.raises(grpc.RpcError) as info:
        list(replies)  # a streaming method is refused the same way
    assert info.value.code() is grpc.StatusCode.UNAUTHENTICATED


def test_grpc_serves_with_the_token(secure_channel) -> None:
    response = predict(secure_channel, [("authorization", f"Bearer {TOKEN}")])
    values = np.array(response.outputs["y"].float_val, np.float32)
    assert values.tolist() == [2.5, 3.0, 3.5]


def test_grpc_health_stays_open(secure_channel) -> None:
    health = health_pb2_grpc.HealthStub(secure_channel)
    reply = health.Check(health_pb2.HealthCheckRequest(), timeout=30)
    assert reply.status == health_pb2.HealthCheckResponse.SERVING
    v2 = grpc_predict_v2_pb2_grpc.GRPCInferenceServiceStub(secure_channel)
    assert v2.ServerLive(pb.ServerLiveRequest(), timeout=30).live
    assert v2.ServerReady(pb.ServerReadyRequest(), timeout=30).ready


def test_plaintext_grpc_to_the_tls_port_fails(secure_server) -> None:
    with grpc.insecure_channel(secure_server.grpc_target) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        with pytest.raises(grpc.RpcError) as info:
            health.Check(health_pb2.HealthCheckRequest(), timeout=5)
    assert info.value.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)


# ----- units: the compare, the settings ---------------------------------------------------
def test_token_compare_is_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[bytes, bytes]] = []
    real = auth.hmac.compare_digest

    def recording(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(auth.hmac, "compare_digest", recording)
    assert auth.bearer_matches(b"Bearer abc", b"abc")
    assert not auth.bearer_matches(b"Bearer abd", b"abc")
    assert not auth.bearer_matches(None, b"abc")
    assert calls == [(b"abc", b"abc"), (b"abd", b"abc")]


@pytest.mark.parametrize(
    "path",
    [
        "http://example.com/models",
        "https://example.com/m",
        "ftp://example.com/m",
        "HTTP://example.com/m",
        "file+http://x/m",
    ],
)
def test_models_are_never_loaded_from_urls(path: str) -> None:
    with pytest.raises(ValidationError, match="never loaded from URLs"):
        Settings(model_base_path=path)


@pytest.mark.parametrize(
    "path", ["models", "/srv/models", "gs://bucket/models", "s3://bucket/models", "ram://models"]
)
def test_local_and_object_store_base_paths_are_accepted(path: str) -> None:
    assert Settings(model_base_path=path).model_base_path == path


def test_tls_needs_both_files(tls_dir: Path) -> None:
    with pytest.raises(ValidationError, match="set both or neither"):
        Settings(tls_cert_file=str(tls_dir / "cert.pem"))
    with pytest.raises(ValidationError, match="does not exist"):
        Settings(tls_cert_file=str(tls_dir / "nope.pem"), tls_key_file=str(tls_dir / "key.pem"))


def test_empty_token_is_refused() -> None:
    with pytest.raises(ValidationError, match="empty"):
        Settings(auth_token=" ")


def test_token_is_hidden_in_the_settings_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PRIMER_AUTH_TOKEN", TOKEN)
    settings = Settings()
    assert settings.auth_token is not None
    assert settings.auth_token.get_secret_value() == TOKEN
    assert TOKEN not in repr(settings)


def test_no_token_flag_on_the_command_line() -> None:
    options = {opt for action in build_parser()._actions for opt in action.option_strings}
    assert not any("token" in opt for opt in options)
    assert {"--tls-cert-file", "--tls-key-file"} <= options


# ----- Pillow's allow-list and escaping symlinks ------------------------------------------
@pytest.mark.parametrize("fmt", ["TIFF", "ICO", "PPM", "TGA", "PCX"])
def test_formats_outside_the_allow_list_are_refused(fmt: str) -> None:
    from PIL import Image

    data = images.encode(Image.fromarray(fixtures.quadrant_image(0)), fmt)
    Image.open(io.BytesIO(data)).load()  # Pillow itself could decode it
    with pytest.raises(ImageError, match="expected one of JPEG, PNG, GIF, BMP, WEBP"):
        preprocessing.decode_image(data)


def test_a_clients_unreadable_exif_is_skipped_without_a_warning() -> None:
    """Pillow's "Truncated File Read" about a client's EXIF block never reaches stderr."""
    with warnings.catch_warnings(record=True) as emitted:
        warnings.simplefilter("always")
        image = preprocessing.decode_image(images.truncated_exif(1))
    assert image.size == (64, 64)
    assert [str(w.message) for w in emitted] == []


def test_symlinks_leading_out_of_the_base_path_are_never_loaded(tmp_path: Path) -> None:
    base, outside = tmp_path / "models", tmp_path / "outside"
    fixtures.half_plus_two(base / "half_plus_two" / "1")
    fixtures.half_plus_two(outside / "secret" / "1")
    os.symlink(outside / "secret" / "1", base / "half_plus_two" / "2")  # a version escapes
    os.symlink(outside / "secret", base / "linked")  # a whole model escapes
    thread = ServerThread(make_settings(base)).start()
    try:
        manager = thread.server.manager
        assert manager.model_names() == ["half_plus_two"]
        assert [status.version for status in manager.statuses("half_plus_two")] == [1]
    finally:
        thread.stop()
