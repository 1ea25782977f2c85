"""Encoded images for the bad-input suite: broken, hostile and unusual ones.

Every "unusual" image marks one quadrant of an 8x8 picture so that ``tiny_image`` (which
scores the brightness of each quadrant) says which quadrant the server saw after decoding.
"""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
from PIL import Image

from tests.fixtures import quadrant_image

LABELS = ("top_left", "top_right", "bottom_left", "bottom_right")
HTML = b"<!DOCTYPE html><html><head><title>x</title></head><body>not an image</body></html>"
PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"


def encode(image: Image.Image, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def png(pixels: np.ndarray) -> bytes:
    return encode(Image.fromarray(pixels), "PNG")


def quadrant_png(quadrant: int) -> bytes:
    return png(quadrant_image(quadrant))


def truncated_jpeg() -> bytes:
    data = encode(Image.fromarray(quadrant_image(0, size=64)), "JPEG", quality=95)
    return data[: len(data) // 2]


def _chunk(kind: bytes, data: bytes) -> bytes:
    return (
        struct.pack(">I", len(data))
        + kind
        + data
        + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    )


def png_declaring(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims ``width`` x ``height`` (its data is one empty row)."""
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit grayscale
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", zlib.compress(b"\x00"))
        + _chunk(b"IEND", b"")
    )


def cmyk_jpeg(quadrant: int) -> bytes:
    return encode(Image.fromarray(quadrant_image(quadrant, 64)).convert("CMYK"), "JPEG", quality=95)


def sixteen_bit_png(quadrant: int) -> bytes:
    wide = quadrant_image(quadrant).astype(np.uint16) * 257  # 255 → 65535
    image = Image.fromarray(wide)  # uint16 → mode I;16
    assert image.mode == "I;16", image.mode
    return encode(image, "PNG")


def palette_with_transparency(quadrant: int) -> bytes:
    image = Image.fromarray(quadrant_image(quadrant)).convert("P")
    black = image.getpixel((7 - 7 * (quadrant % 2), 7 - 7 * (quadrant // 2)))
    return encode(image, "PNG", transparency=black)  # the black background is transparent


def rgba_with_transparent_mark(quadrant: int) -> bytes:
    """White mark with alpha 0 on an opaque black background: the alpha is dropped, so the
    mark still shows (no compositing onto a background)."""
    gray = quadrant_image(quadrant)
    alpha = np.where(gray > 0, 0, 255).astype(np.uint8)
    rgba = np.dstack([gray, gray, gray, alpha])
    return encode(Image.fromarray(rgba, mode="RGBA"), "PNG")


def exif_rotated(stored_quadrant: int, orientation: int) -> bytes:
    image = Image.fromarray(quadrant_image(stored_quadrant, 64))
    exif = Image.Exif()
    exif[0x0112] = orientation
    return encode(image, "JPEG", quality=95, exif=exif.tobytes())


def truncated_exif(stored_quadrant: int) -> bytes:
    """A JPEG whose EXIF orientation entry points past the end of its EXIF block."""
    tiff = (
        b"II*\x00\x08\x00\x00\x00"  # little-endian TIFF header, IFD at offset 8
        b"\x01\x00"  # one entry: Orientation, SHORT, count 4 (8 bytes) at offset 64
        b"\x12\x01\x03\x00\x04\x00\x00\x00\x40\x00\x00\x00"
        b"\x00\x00\x00\x00"
    )
    image = Image.fromarray(quadrant_image(stored_quadrant, 64))
    return encode(image, "JPEG", quality=95, exif=b"Exif\x00\x00" + tiff)


def animated_gif(first: int, second: int) -> bytes:
    frames = [Image.fromarray(quadrant_image(q)).convert("P") for q in (first, second)]
    return encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)


def solid_png(width: int, height: int, value: int = 255) -> bytes:
    return png(np.full((height, width), value, np.uint8))
