"""model.json: parsed from bytes, refused with the contract's own error when malformed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from contract.errors import ModelCardError
from contract.model_card import (
    ImageContract,
    ModelCard,
    TensorInfo,
    parse_model_card,
    read_model_card,
    write_model_card,
)

CARD = ModelCard(
    name="digits",
    inputs=(TensorInfo("image", "float32", (-1, 28, 28)),),
    outputs=(TensorInfo("probabilities", "float32", (-1, 10)),),
    image=ImageContract("grayscale", 28, 28),
    labels=tuple(str(i) for i in range(10)),
)


def test_written_card_reads_back_equal(tmp_path: Path) -> None:
    write_model_card(tmp_path, CARD)
    assert read_model_card(tmp_path) == CARD
    assert parse_model_card((tmp_path / "assets.extra" / "model.json").read_bytes()) == CARD
    assert read_model_card(tmp_path / "elsewhere") is None


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        (b"\xff\xfe", "cannot read model.json"),
        (b"{", "cannot read model.json"),
        (b"[1, 2]", "must hold a JSON object"),
        (json.dumps({"name": "x"}).encode(), "model.json is malformed"),
        (json.dumps({**CARD.to_dict(), "format": 9}).encode(), "unsupported model.json format"),
        (
            json.dumps(
                {**CARD.to_dict(), "image": {"color_mode": "cmyk", "height": 1, "width": 1}}
            ).encode(),
            "image.color_mode must be one of",
        ),
    ],
)
def test_malformed_cards_raise_model_card_error(data: bytes, needle: str) -> None:
    with pytest.raises(ModelCardError, match=needle):
        parse_model_card(data, "test/model.json")
