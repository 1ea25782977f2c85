"""The one image preprocessing implementation, shared by training loaders and the service.

decode (Pillow, format allow-list, pixel limit) → EXIF orientation → grayscale/RGB →
resize → normalize to float32. Training imports these same functions, so what the service
feeds a model is bitwise what the training loader produced for the same file.

Stated behaviours for unusual images:
    * EXIF orientation is applied before anything else.
    * Animated images (GIF, WebP): the first frame is used.
    * Alpha is dropped (Pillow's ``convert``), palette images are expanded.
    * 16-bit grayscale keeps its 8 most significant bits; CMYK converts to RGB.
    * Any aspect ratio is resized to the contract's size, as long as both sides are
      at least one pixel and the pixel count is under the limit.
    * Metadata Pillow cannot read (e.g. a truncated EXIF block) is skipped: the image is
      served as stored, and Pillow's warnings about it stay off the process's stderr.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from contract.errors import ImageError, ImageTooLargeError
from contract.model_card import ImageContract

ALLOWED_FORMATS: tuple[str, ...] = ("JPEG", "PNG", "GIF", "BMP", "WEBP")
DEFAULT_MAX_PIXELS = 4096 * 4096
"""The pixel limit of a decoded image unless the caller sets another."""

_RESAMPLE = {
    "nearest": Image.Resampling.NEAREST,
    "box": Image.Resampling.BOX,
    "bilinear": Image.Resampling.BILINEAR,
    "hamming": Image.Resampling.HAMMING,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
}
_SIXTEEN_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I")


def decode_image(data: bytes, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Decode encoded image bytes with Pillow, refusing oversize images from the header.

    Pillow's warnings stay off the process's stderr: its UserWarnings ("Corrupt EXIF data",
    "Truncated File Read") describe a client's bytes, not a server fault, and a client could
    vary them to fill the log; its decompression-bomb warning gives way to ``max_pixels``.
    (``catch_warnings`` swaps the process-wide filter list, so decodes in other threads can
    at worst leave these same two filters installed.)

    Raises:
        ImageError: empty bytes, a format outside the allow-list, corrupt data.
        ImageTooLargeError: more than ``max_pixels`` pixels (checked before decoding).
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=UserWarning, module=r"PIL\.")
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        return _decode(data, max_pixels)


def _decode(data: bytes, max_pixels: int) -> Image.Image:
    if not data:
        raise ImageError(
            f"image is empty (0 bytes); expected encoded image bytes in one of "
            f"{', '.join(ALLOWED_FORMATS)}"
        )
    try:
        image = Image.open(io.BytesIO(data), formats=ALLOWED_FORMATS)
        width, height = image.size
        if width * height > max_pixels:
            raise ImageTooLargeError(
                f"image is {width}x{height} = {width * height} pixels; "
                f"the limit is {max_pixels} pixels"
            )
        image.seek(0)
        image.load()
    except ImageError:  # our own refusal above (a ValueError too): keep it as it is
        raise
    except Image.DecompressionBombError as exc:
        raise ImageTooLargeError(
            f"image exceeds the pixel limit of {max_pixels} pixels: {exc}"
        ) from exc
    except UnidentifiedImageError as exc:
        raise ImageError(
            f"bytes are not an image in an accepted format; expected one of "
            f"{', '.join(ALLOWED_FORMATS)}"
        ) from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ImageError(f"image data is corrupt or truncated: {exc}") from exc
    try:
        return ImageOps.exif_transpose(image)
    except (OSError, SyntaxError, ValueError, KeyError, TypeError) as exc:
        raise ImageError(f"image has unreadable EXIF orientation data: {exc}") from exc


def to_color_mode(image: Image.Image, color_mode: str) -> Image.Image:
    """Convert any Pillow mode to 8-bit ``L`` (grayscale) or ``RGB``."""
    if image.mode in _SIXTEEN_BIT_MODES:
        wide = np.asarray(image, dtype=np.uint32)
        image = Image.fromarray((np.clip(wide, 0, 65535) >> 8).astype(np.uint8), mode="L")
    elif image.mode == "F":
        image = Image.fromarray(np.clip(np.asarray(image), 0, 255).astype(np.uint8), mode="L")
    target = "L" if color_mode == "grayscale" else "RGB"
    return image if image.mode == target else image.convert(target)


def resize(image: Image.Image, contract: ImageContract) -> Image.Image:
    """Resize to the contract's width x height with its resampling filter (no-op if equal)."""
    size = (contract.width, contract.height)
    if image.size == size:
        return image
    return image.resize(size, resample=_RESAMPLE[contract.resample])


def normalize(pixels: np.ndarray, contract: ImageContract) -> np.ndarray:
    """Map 8-bit pixels (..., H, W, C) to float32 as the contract says.

    unit: x / 255 (the primer's normalization); symmetric: x / 127.5 - 1;
    standardize: (x - mean) / std per channel, with the training split's statistics.
    """
    x = pixels.astype(np.float32)
    if contract.normalization == "unit":
        return x / np.float32(255.0)
    if contract.normalization == "symmetric":
        return x / np.float32(127.5) - np.float32(1.0)
    mean = np.asarray(contract.mean, dtype=np.float32)
    std = np.asarray(contract.std, dtype=np.float32)
    return (x - mean) / std


def pil_to_pixels(image: Image.Image, contract: ImageContract) -> np.ndarray:
    """Color-convert and resize a decoded image; return uint8 pixels shaped (H, W, C)."""
    image = resize(to_color_mode(image, contract.color_mode), contract)
    pixels = np.asarray(image, dtype=np.uint8)
    return pixels[..., np.newaxis] if pixels.ndim == 2 else pixels


def preprocess_image(
    data: bytes, contract: ImageContract, *, max_pixels: int = DEFAULT_MAX_PIXELS
) -> np.ndarray:
    """Encoded image bytes → one float32 row shaped (H, W, C) per the image contract."""
    return normalize(pil_to_pixels(decode_image(data, max_pixels=max_pixels), contract), contract)


def array_to_pixels(pixels: np.ndarray, contract: ImageContract) -> np.ndarray:
    """Already-decoded pixels (H, W) or (H, W, C) → uint8 (H, W, C) at the contract's size.

    Used for datasets stored as arrays (MNIST ``.npz``, Sign Language MNIST CSV); the
    path after decoding is the same as for encoded bytes.
    """
    array = np.asarray(pixels)
    if array.dtype != np.uint8:
        array = np.clip(array, 0, 255).astype(np.uint8)
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    return pil_to_pixels(Image.fromarray(array), contract)


def preprocess_pixels(pixels: np.ndarray, contract: ImageContract) -> np.ndarray:
    """Already-decoded pixels (H, W) or (H, W, C) → one float32 row (H, W, C)."""
    return normalize(array_to_pixels(pixels, contract), contract)


def to_input_layout(rows: np.ndarray, input_shape: Sequence[int]) -> np.ndarray:
    """Fit a batch of (N, H, W, C) rows to the model input's rank.

    A model declaring (-1, H, W) gets the channel axis squeezed (grayscale only); one
    declaring (-1, H*W*C) gets flat rows; (-1, H, W, C) is passed through.

    Raises:
        ImageError: the contract's image cannot fill the declared input.
    """
    rank = len(input_shape)
    if rank == 4:
        out = rows
    elif rank == 3 and rows.shape[-1] == 1:
        out = rows[..., 0]
    elif rank == 2:
        out = rows.reshape(rows.shape[0], -1)
    else:
        raise ImageError(
            f"an image of shape {list(rows.shape[1:])} cannot feed input shape {list(input_shape)}"
        )
    for got, want in zip(out.shape[1:], input_shape[1:], strict=True):
        if want not in (-1, None) and got != want:
            raise ImageError(
                f"preprocessed image has shape {list(out.shape[1:])}, "
                f"model expects {list(input_shape)}"
            )
    return out
