"""loadtest.memory_modes: how a variant is named on its command line."""

from __future__ import annotations

import argparse

import pytest

from loadtest.memory_modes import parse_variant


def test_a_variant_names_its_environment_and_settings() -> None:
    name, spec = parse_variant(
        'pool={"env": {"TF_ONEDNN_USE_SYSTEM_ALLOCATOR": "0"}, "config": {"memory_mode": "frugal"}}'
    )
    assert name == "pool"
    assert spec == {
        "env": {"TF_ONEDNN_USE_SYSTEM_ALLOCATOR": "0"},
        "config": {"memory_mode": "frugal"},
    }


def test_a_bare_name_is_the_default_server() -> None:
    assert parse_variant("throughput") == ("throughput", {})


@pytest.mark.parametrize("text", ['={"env": {}}', 'x={"enviro": {}}', "x=[1]"])
def test_a_malformed_variant_is_refused(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match="expected name="):
        parse_variant(text)
