"""--stages parses into stages; a bad item names the expected format."""

from __future__ import annotations

import pytest

from training.stages import Stage, StageError, default_stages, parse_stages


def test_parse_stages_with_and_without_rates() -> None:
    assert parse_stages("head:3, all:2@1e-5", 1e-3) == (
        Stage("head", 3, 1e-3),
        Stage("all", 2, 1e-5),
    )


@pytest.mark.parametrize(
    "text", ["head", "base:2", "all:0", "all:two", "all:2@-1", "all:2@nan", ""]
)
def test_bad_stages(text: str) -> None:
    with pytest.raises(StageError, match="--stages item"):
        parse_stages(text, 1e-3)


def test_default_stage_follows_freeze_base() -> None:
    assert default_stages(5, 0.1, freeze_base=True) == (Stage("head", 5, 0.1),)
    assert default_stages(5, 0.1, freeze_base=False) == (Stage("all", 5, 0.1),)
