"""The serving contract stored beside each SavedModel: ``assets.extra/model.json``.

TF Serving ignores the file; this service reads it for everything the SavedModel does not
say: the image contract (how bytes become the input tensor), the class labels in output
order, and the model's provenance. Training writes it, serving reads it: one schema here.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from contract.errors import ModelCardError
from contract.layout import MODEL_CARD_PATH, SIGNATURE

MODEL_CARD_FORMAT = 1

ColorMode = Literal["grayscale", "rgb"]
Normalization = Literal["unit", "symmetric", "standardize"]
RESAMPLE_FILTERS = ("nearest", "box", "bilinear", "hamming", "bicubic", "lanczos")
COLOR_MODES = ("grayscale", "rgb")
NORMALIZATIONS = ("unit", "symmetric", "standardize")


@dataclass(frozen=True)
class TensorInfo:
    """Name, dtype and shape of one signature tensor (-1 marks an unknown dimension)."""

    name: str
    dtype: str
    shape: tuple[int, ...]

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TensorInfo:
        return cls(
            name=str(data["name"]),
            dtype=str(data["dtype"]),
            shape=tuple(int(d) for d in data["shape"]),
        )


@dataclass(frozen=True)
class ImageContract:
    """How encoded image bytes become one input row: decode, color, resize, normalize.

    ``mean``/``std`` are used only by ``standardize``; each is one number or one per channel.
    """

    color_mode: ColorMode
    height: int
    width: int
    resample: str = "lanczos"
    normalization: Normalization = "unit"
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        if self.color_mode not in COLOR_MODES:
            raise ModelCardError(
                f"image.color_mode must be one of {COLOR_MODES}, got {self.color_mode!r}"
            )
        if self.resample not in RESAMPLE_FILTERS:
            raise ModelCardError(
                f"image.resample must be one of {RESAMPLE_FILTERS}, got {self.resample!r}"
            )
        if self.normalization not in NORMALIZATIONS:
            raise ModelCardError(
                f"image.normalization must be one of {NORMALIZATIONS}, got {self.normalization!r}"
            )
        if self.height <= 0 or self.width <= 0:
            raise ModelCardError(f"image size must be positive, got {self.height}x{self.width}")
        if self.normalization == "standardize":
            if not self.mean or not self.std:
                raise ModelCardError("image.normalization 'standardize' needs mean and std")
            if any(s <= 0 for s in self.std):
                raise ModelCardError("image.std values must be positive")
            for stat in (self.mean, self.std):
                if len(stat) not in (1, self.channels):
                    raise ModelCardError(
                        f"image mean/std need 1 or {self.channels} values, got {len(stat)}"
                    )

    @property
    def channels(self) -> int:
        return 1 if self.color_mode == "grayscale" else 3

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ImageContract:
        def stat(value: Any) -> tuple[float, ...] | None:
            if value is None:
                return None
            values = value if isinstance(value, list | tuple) else [value]
            return tuple(float(v) for v in values)

        return cls(
            color_mode=data["color_mode"],
            height=int(data["height"]),
            width=int(data["width"]),
            resample=data.get("resample", "lanczos"),
            normalization=data.get("normalization", "unit"),
            mean=stat(data.get("mean")),
            std=stat(data.get("std")),
        )

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["mean"] = list(self.mean) if self.mean is not None else None
        data["std"] = list(self.std) if self.std is not None else None
        return data


@dataclass(frozen=True)
class ModelCard:
    """Everything the service needs about a model version that the SavedModel lacks."""

    name: str
    inputs: tuple[TensorInfo, ...]
    outputs: tuple[TensorInfo, ...]
    image: ImageContract | None = None
    labels: tuple[str, ...] = ()
    signature: str = SIGNATURE
    provenance: dict[str, Any] = field(default_factory=dict)
    variants: dict[str, Any] = field(default_factory=dict)
    """Deployment variants by runtime (file, format, bytes, settings, fidelity)."""
    format: int = MODEL_CARD_FORMAT

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelCard:
        try:
            if int(data.get("format", MODEL_CARD_FORMAT)) != MODEL_CARD_FORMAT:
                raise ModelCardError(
                    f"unsupported model.json format {data.get('format')!r}, "
                    f"expected {MODEL_CARD_FORMAT}"
                )
            image = data.get("image")
            return cls(
                name=str(data["name"]),
                signature=str(data.get("signature", SIGNATURE)),
                inputs=tuple(TensorInfo.from_dict(t) for t in data["inputs"]),
                outputs=tuple(TensorInfo.from_dict(t) for t in data["outputs"]),
                image=ImageContract.from_dict(image) if image else None,
                labels=tuple(str(label) for label in data.get("labels") or ()),
                provenance=dict(data.get("provenance") or {}),
                variants=dict(data.get("variants") or {}),
            )
        except ModelCardError:
            raise
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelCardError(f"model.json is malformed: {exc!r}") from exc

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": self.format,
            "name": self.name,
            "signature": self.signature,
            "inputs": [
                {"name": t.name, "dtype": t.dtype, "shape": list(t.shape)} for t in self.inputs
            ],
            "outputs": [
                {"name": t.name, "dtype": t.dtype, "shape": list(t.shape)} for t in self.outputs
            ],
            "image": self.image.to_dict() if self.image else None,
            "labels": list(self.labels),
            "provenance": self.provenance,
            **({"variants": self.variants} if self.variants else {}),
        }


def parse_model_card(data: bytes, where: str = "model.json") -> ModelCard:
    """A model card from the bytes of a ``model.json`` file.

    Args:
        data: the file's bytes.
        where: names the file in error messages.

    Raises:
        ModelCardError: not UTF-8 JSON, not an object, or breaking the schema.
    """
    try:
        document = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelCardError(f"{where}: cannot read model.json: {exc}") from exc
    if not isinstance(document, dict):
        raise ModelCardError(f"{where}: model.json must hold a JSON object")
    return ModelCard.from_dict(document)


def read_model_card(version_dir: str | Path) -> ModelCard | None:
    """Read ``assets.extra/model.json`` of a local version folder; None when absent.

    (The server reads remote filesystems through ``tf.io.gfile`` and calls
    ``parse_model_card`` itself.)
    """
    path = Path(version_dir) / MODEL_CARD_PATH
    if not path.exists():
        return None
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ModelCardError(f"{path}: cannot read model.json: {exc}") from exc
    return parse_model_card(data, str(path))


def write_model_card(version_dir: str | Path, card: ModelCard) -> Path:
    """Write the card into ``assets.extra/model.json`` of a (temporary) version folder."""
    path = Path(version_dir) / MODEL_CARD_PATH
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(card.to_dict(), indent=2) + "\n", encoding="utf-8")
    return path
