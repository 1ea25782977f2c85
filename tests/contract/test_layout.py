"""The repository naming rules, written once for training and serving."""

from __future__ import annotations

import pytest

from contract import layout
from contract.errors import InvalidModelNameError, InvalidVersionError


@pytest.mark.parametrize(
    ("text", "is_version"),
    [
        ("1", True),
        ("007", True),  # TF Serving reads a leading-zero folder as its number
        ("9" * 18, True),
        ("9" * 19, False),  # beyond int64: not a version for training or serving
        ("0", False),
        ("-1", False),
        ("1.5", False),
        (".tmp-export-abc", False),
        ("", False),
        ("\u0661", False),  # an Arabic-Indic digit: only ASCII digits count
    ],
)
def test_version_rule(text: str, is_version: bool) -> None:
    assert layout.is_version(text) is is_version
    if is_version:
        assert layout.parse_version(text) == int(text)
    else:
        with pytest.raises(InvalidVersionError, match="expected a positive integer"):
            layout.parse_version(text)


@pytest.mark.parametrize(
    ("name", "valid"),
    [
        ("mnist_dnn", True),
        ("a.b-c_1", True),
        ("A" * 128, True),
        ("A" * 129, False),
        ("_hidden", False),
        (".tmp", False),
        ("a/b", False),
        ("../up", False),
        ("line\nbreak", False),
        ("", False),
    ],
)
def test_model_name_rule(name: str, valid: bool) -> None:
    assert layout.is_model_name(name) is valid
    if valid:
        assert layout.check_model_name(name) == name
    else:
        with pytest.raises(InvalidModelNameError, match="expected letters, digits") as raised:
            layout.check_model_name(name)
        assert "\n" not in str(raised.value)  # a client's string is escaped


def test_contract_paths_are_tf_servings() -> None:
    assert str(layout.WARMUP_PATH) == "assets.extra/tf_serving_warmup_requests"
    assert str(layout.MODEL_CARD_PATH) == "assets.extra/model.json"
    assert not layout.is_version(layout.STAGING_PREFIX + "1")
