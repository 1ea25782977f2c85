"""Shared pieces of the deploy tests: paths, and PRIMER_* environments checked against Settings."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, get_args, get_origin

import pytest
from pydantic import BaseModel

from service.config import Settings

REPO = Path(__file__).resolve().parents[3]
DEPLOY = REPO / "deploy"
KUBERNETES = DEPLOY / "kubernetes"
KSERVE = DEPLOY / "kserve"
SCHEMAS = DEPLOY / "schemas"
PREFIX = "PRIMER_"


def _nested(annotation: Any) -> tuple[bool, type[BaseModel] | None]:
    """(is a dict keyed by name, the BaseModel inside) for a field's annotation."""
    is_dict = get_origin(annotation) is dict
    for candidate in (annotation, *get_args(annotation)):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return is_dict, candidate
        for inner in get_args(candidate):
            if isinstance(inner, type) and issubclass(inner, BaseModel):
                return is_dict or get_origin(candidate) is dict, inner
    return is_dict, None


def unknown_settings(env: dict[str, str]) -> list[str]:
    """PRIMER_* names that match no field of Settings (pydantic-settings ignores them)."""
    unknown = []
    for key in env:
        if not key.startswith(PREFIX):
            continue
        parts = key[len(PREFIX) :].lower().split("__")
        model: type[BaseModel] | None = Settings
        index = 0
        while index < len(parts):
            if model is None or parts[index] not in model.model_fields:
                unknown.append(key)
                break
            is_dict, model = _nested(model.model_fields[parts[index]].annotation)
            index += 2 if is_dict else 1
    return unknown


@pytest.fixture
def settings_from_env(monkeypatch: pytest.MonkeyPatch) -> Callable[[dict[str, str]], Settings]:
    """Build Settings the way the server does, from exactly the given PRIMER_* variables."""

    def load(env: dict[str, str]) -> Settings:
        assert not unknown_settings(env), f"not settings: {unknown_settings(env)}"
        for key in list(os.environ):
            if key.startswith(PREFIX):
                monkeypatch.delenv(key)
        for key, value in env.items():
            if key.startswith(PREFIX):
                monkeypatch.setenv(key, value)
        return Settings.load()

    return load
