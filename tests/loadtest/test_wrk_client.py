"""The benchmark's HTTP load generator: wrk posting a body with its headers is real traffic."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from loadtest.scenarios import v2_binary_body
from loadtest.wrk import run_wrk
from tests.conftest import ServerThread


def test_wrk_sends_the_extra_headers_a_v2_binary_body_needs(
    server: ServerThread, tmp_path: Path
) -> None:
    body, header_length = v2_binary_body("image", np.zeros((1, 28, 28), np.float32))
    path = tmp_path / "body.bin"
    path.write_bytes(body)
    url = f"{server.rest_url}/v2/models/mnist_dnn/infer"
    served = run_wrk(
        url,
        path,
        concurrency=2,
        seconds=1,
        content_type="application/octet-stream",
        headers={"Inference-Header-Content-Length": str(header_length)},
    )
    assert served.requests > 0 and served.errors == 0
    # without the header the body is read as JSON, which it is not: every request is a 400
    refused = run_wrk(url, path, concurrency=2, seconds=1, content_type="application/octet-stream")
    assert refused.requests > 0 and refused.errors == refused.requests
