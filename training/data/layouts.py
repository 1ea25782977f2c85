"""The primer's raw disk layouts, read into uint8 pixels through the service's preprocessing.

Three ways to say which image has which label:

* **folders** — ``root/<class name>/<image files>``; the class list is the sorted
  sub-folder names.
* **CSV** — rows of ``label,location`` (an optional ``label,location`` header row);
  a relative location is resolved against the CSV file's folder.
* **JSON** — a list of ``{"label": ..., "location": ...}`` objects; locations resolve
  like the CSV's.

Every image goes through :func:`contract.preprocessing.decode_image` and
:func:`contract.preprocessing.pil_to_pixels`, exactly the path the service takes for
encoded bytes, so the pixels a model trains on are the pixels it will be served.
"""

from __future__ import annotations

import csv
import json
import os
import re
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from contract.errors import ContractError
from contract.model_card import ImageContract
from contract.preprocessing import array_to_pixels, decode_image, pil_to_pixels

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".gif", ".bmp", ".webp")
"""File name endings the folder layout reads; other files (e.g. ``Thumbs.db``) are skipped."""

_HEADER_NAMES = {"label", "location", "path", "file", "filename", "image"}


class DatasetError(ValueError):
    """A dataset cannot be read; the message names the file/row and what was expected."""


@dataclass(frozen=True)
class Entry:
    """One labelled image file of an index.

    Attributes:
        label: the class name as written in the index.
        path: where the image file is.
        where: how to point a person at this entry (e.g. ``data.csv row 3``).
    """

    label: str
    path: Path
    where: str


def natural_sorted(names: Iterable[str]) -> list[str]:
    """Sort so that ``2`` comes before ``10`` and ``class_2`` before ``class_10``."""

    def key(name: str) -> list[tuple[int, int | str]]:
        return [
            (0, int(part)) if part.isdigit() else (1, part)
            for part in re.split(r"(\d+)", name)
            if part
        ]

    return sorted(set(names), key=key)


def read_folders(root: Path) -> list[Entry]:
    """Index ``root/<class>/<image>``: one entry per image file, in a stable order.

    Raises:
        DatasetError: no class sub-folders, or a class sub-folder without image files.
    """
    classes = natural_sorted(
        p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")
    )
    if not classes:
        raise DatasetError(f"{root}: empty folder; expected one sub-folder of images per class")
    entries = []
    for name in classes:
        files = sorted(
            p
            for p in (root / name).iterdir()
            if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_SUFFIXES
        )
        if not files:
            raise DatasetError(
                f"{root / name}: class folder has no image files; expected "
                f"files ending in {', '.join(IMAGE_SUFFIXES)}"
            )
        entries.extend(Entry(name, path, str(path)) for path in files)
    return entries


def _location(base: Path, location: str) -> Path:
    path = Path(location).expanduser()
    return path if path.is_absolute() else base / path


def read_csv_index(path: Path) -> list[Entry]:
    """Index a ``label,location`` CSV file (header row optional).

    Raises:
        DatasetError: unreadable file, no rows, or a row without a label or location
            (the message names the row).
    """
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.reader(handle)
            rows = [(reader.line_num, row) for row in reader]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DatasetError(f"{path}: cannot read CSV: {exc}") from exc
    rows = [(n, [cell.strip() for cell in row]) for n, row in rows if any(c.strip() for c in row)]
    label_col, location_col = 0, 1
    if rows and {cell.lower() for cell in rows[0][1]} <= _HEADER_NAMES:
        header = [cell.lower() for cell in rows[0][1]]
        if "label" in header and len(header) == 2:
            label_col = header.index("label")
            location_col = 1 - label_col
        rows = rows[1:]
    if not rows:
        raise DatasetError(f"{path}: no data rows; expected rows of label,location")
    entries = []
    for line, row in rows:
        where = f"{path} row {line}"
        if len(row) > 2:
            raise DatasetError(f"{where}: {len(row)} columns; expected 2 (label,location)")
        label = row[label_col] if len(row) > label_col else ""
        location = row[location_col] if len(row) > location_col else ""
        if not label:
            raise DatasetError(f"{where}: missing label; expected label,location")
        if not location:
            raise DatasetError(f"{where}: missing image location; expected label,location")
        entries.append(Entry(label, _location(path.parent, location), where))
    return entries


def read_json_index(path: Path) -> list[Entry]:
    """Index a JSON file holding a list of ``{"label": ..., "location": ...}`` objects.

    Raises:
        DatasetError: invalid JSON, not a list, or an item without label or location.
    """
    try:
        items = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{path}: cannot read JSON: {exc}") from exc
    except json.JSONDecodeError as exc:
        raise DatasetError(
            f"{path}: invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
        ) from exc
    if not isinstance(items, list) or not items:
        raise DatasetError(
            f'{path}: expected a non-empty JSON list of {{"label": ..., "location": ...}} objects'
        )
    entries = []
    for index, item in enumerate(items):
        where = f"{path} item [{index}]"
        if not isinstance(item, dict):
            raise DatasetError(
                f"{where}: expected an object with label and location, got {type(item).__name__}"
            )
        label, location = item.get("label"), item.get("location")
        if label is None or str(label).strip() == "":
            raise DatasetError(f"{where}: missing label")
        if not isinstance(location, str) or not location.strip():
            raise DatasetError(f"{where}: missing image location; expected a file path string")
        entries.append(Entry(str(label).strip(), _location(path.parent, location.strip()), where))
    return entries


def image_file_pixels(path: Path, contract: ImageContract, where: str) -> np.ndarray:
    """Read one image file into uint8 pixels (H, W, C) the way the service would.

    Raises:
        DatasetError: the file is missing or is not an image the service would accept.
    """
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise DatasetError(f"{where}: image file not found: {path}") from None
    except OSError as exc:
        raise DatasetError(f"{where}: cannot read image {path}: {exc.strerror or exc}") from exc
    try:
        return pil_to_pixels(decode_image(data), contract)
    except (ContractError, ValueError) as exc:
        raise DatasetError(f"{where}: {path} is not a usable image: {exc}") from exc


def _describe(names: Sequence[str], limit: int = 12) -> str:
    shown = ", ".join(repr(n) for n in names[:limit])
    return shown + (f", ... ({len(names)} classes)" if len(names) > limit else "")


def label_indices(entries: Sequence[Entry], class_names: Sequence[str]) -> np.ndarray:
    """Map each entry's label to its index in ``class_names``.

    Raises:
        DatasetError: a label is not in the class list (names the entry).
    """
    index = {name: i for i, name in enumerate(class_names)}
    labels = np.empty(len(entries), dtype=np.int64)
    for i, entry in enumerate(entries):
        if entry.label not in index:
            raise DatasetError(
                f"{entry.where}: label {entry.label!r} is not in the class "
                f"list; expected one of {_describe(class_names)}"
            )
        labels[i] = index[entry.label]
    return labels


def load_entries(
    entries: Sequence[Entry], contract: ImageContract, class_names: Sequence[str]
) -> tuple[np.ndarray, np.ndarray]:
    """Read every entry's image; labels are checked first so a bad label fails fast.

    Returns:
        uint8 pixels (N, H, W, C) and int64 class indices (N,).
    """
    labels = label_indices(entries, class_names)
    pixels = np.empty(
        (len(entries), contract.height, contract.width, contract.channels), dtype=np.uint8
    )

    def read(i: int) -> None:
        pixels[i] = image_file_pixels(entries[i].path, contract, entries[i].where)

    parallel_map(read, len(entries))
    return pixels, labels


def decode_workers() -> int:
    """Threads that decode images: one per CPU the process may use (at least 1)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def parallel_map(work: Callable[[int], None], n: int) -> None:
    """Run ``work(i)`` for i in 0..n-1 on a thread pool; re-raise the first failure by index.

    Pillow releases the GIL while it decodes and resizes, so threads decode in parallel.
    The error raised is that of the lowest failing index, so messages name the same row
    a sequential read would.
    """
    workers = min(decode_workers(), n)
    if workers <= 1:
        for i in range(n):
            work(i)
        return

    def run(chunk: range) -> None:  # chunks amortize the pool's per-task overhead
        for i in chunk:
            work(i)

    size = max(1, min(64, n // (4 * workers)))
    chunks = [range(start, min(start + size, n)) for start in range(0, n, size)]
    pool = ThreadPoolExecutor(workers, thread_name_prefix="decode")
    try:
        for _ in pool.map(run, chunks):
            pass
    finally:  # on a failure, drop the chunks not yet started
        pool.shutdown(wait=True, cancel_futures=True)


def array_pixels(images: np.ndarray, contract: ImageContract) -> np.ndarray:
    """A batch of decoded images (N, H, W) or (N, H, W, C) → uint8 (N, h, w, c) per contract.

    Images already at the contract's size, channel count and dtype pass through unchanged
    (what Pillow would return for them); others go image by image through Pillow.
    """
    images = np.asarray(images)
    if images.ndim == 3:
        images = images[..., np.newaxis]
    if images.ndim != 4:
        raise DatasetError(
            f"image array has shape {list(images.shape)}; expected (N, H, W) or (N, H, W, C)"
        )
    if images.dtype == np.uint8 and images.shape[1:] == (
        contract.height,
        contract.width,
        contract.channels,
    ):
        return images
    out = np.empty(
        (len(images), contract.height, contract.width, contract.channels), dtype=np.uint8
    )

    def convert(i: int) -> None:
        out[i] = array_to_pixels(images[i], contract)

    parallel_map(convert, len(images))
    return out
