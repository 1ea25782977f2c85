"""Bad and unusual images on all four image paths (REST predict and classify, both gRPCs).

Part of the bad-input suite (``pytest -m bad_input``): each case asserts the documented
status and a message saying what was expected; then ``still_serving`` asserts the server is
live and still answers a good request on both protocols. Stated policies pinned here (see
docs/reliability.md): images of any aspect ratio are resized to the contract (1x1,
100000x1, 1x100000 are served); the pixel limit is checked from the header before
decoding; EXIF orientation is applied; animated images use their first frame; alpha is
dropped (not composited); palette images are expanded; 16-bit keeps its top 8 bits;
CMYK → RGB.
"""

from __future__ import annotations

import math

import pytest

from tests.suites.reliability import images
from tests.suites.reliability.clients import (
    IMAGE_TRANSPORTS,
    send_image,
)

pytestmark = [pytest.mark.bad_input, pytest.mark.usefixtures("still_serving")]


# ----- images, on all four image paths ----------------------------------------------------
BAD_IMAGES = [
    pytest.param(images.truncated_jpeg(), 400, "corrupt or truncated", id="truncated-jpeg"),
    pytest.param(b"", 400, "image is empty", id="zero-byte-image"),
    pytest.param(images.HTML, 400, "expected one of JPEG, PNG", id="html"),
    pytest.param(images.PDF, 400, "expected one of JPEG, PNG", id="pdf"),
    pytest.param(images.png_declaring(30000, 30000), 413, "pixel", id="png-30000x30000"),
    pytest.param(
        images.solid_png(1001, 1000),
        413,
        "the limit is 1000000 pixels",
        id="image-over-pixel-limit",
    ),
    pytest.param(b"GIF89a" + b"\x00" * 20, 400, "", id="gif-header-only"),
]


@pytest.mark.parametrize("transport", IMAGE_TRANSPORTS)
@pytest.mark.parametrize(("data", "status", "needle"), BAD_IMAGES)
def test_bad_image(transport: str, data: bytes, status: int, needle: str, http, tfs, v2) -> None:
    send_image(transport, data, http, tfs, v2).check(status, needle)


STATED_IMAGES = [
    pytest.param(images.cmyk_jpeg(0), 0, id="cmyk-jpeg"),
    pytest.param(images.sixteen_bit_png(1), 1, id="16-bit-png"),
    pytest.param(images.palette_with_transparency(2), 2, id="palette-transparency"),
    pytest.param(images.rgba_with_transparent_mark(3), 3, id="rgba-alpha-dropped"),
    pytest.param(images.exif_rotated(0, orientation=6), 1, id="exif-rotated-90-cw"),
    pytest.param(images.exif_rotated(0, orientation=3), 3, id="exif-rotated-180"),
    pytest.param(images.animated_gif(2, 3), 2, id="animated-gif-first-frame"),
    pytest.param(images.truncated_exif(1), 1, id="truncated-exif-served-as-stored"),
]


@pytest.mark.parametrize("transport", IMAGE_TRANSPORTS)
@pytest.mark.parametrize(("data", "quadrant"), STATED_IMAGES)
def test_unusual_image_has_its_stated_behaviour(
    transport: str, data: bytes, quadrant: int, http, tfs, v2
) -> None:
    outcome = send_image(transport, data, http, tfs, v2)
    outcome.check(200)
    assert images.LABELS[outcome.top] == images.LABELS[quadrant], outcome.scores


@pytest.mark.parametrize("transport", IMAGE_TRANSPORTS)
@pytest.mark.parametrize(("width", "height"), [(1, 1), (100_000, 1), (1, 100_000)])
def test_extreme_aspect_ratios_are_served(
    transport: str, width: int, height: int, http, tfs, v2
) -> None:
    outcome = send_image(transport, images.solid_png(width, height), http, tfs, v2)
    outcome.check(200)
    assert outcome.scores is not None
    assert all(math.isfinite(s) for s in outcome.scores)
    assert outcome.scores == pytest.approx([0.25] * 4)  # uniform: every quadrant alike
