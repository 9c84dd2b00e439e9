"""docs/configuration.md is the settings' reference: generated from them, and in step."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import Field

from recmill.config import Settings
from recmill.config_reference import PARAMS, markdown, sections, type_name

DOC = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"


def leaf_keys(tree: dict, prefix: str = "") -> set[str]:
    keys = set()
    for key, value in tree.items():
        sub = isinstance(value, dict) and f"{prefix}{key}" not in DICT_SETTINGS
        keys |= leaf_keys(value, f"{prefix}{key}.") if sub else {f"{prefix}{key}"}
    return keys


DICT_SETTINGS = {f"{name}.{key}".lstrip(".") for name, _, own in sections(Settings) for key, f in own
                 if "dict" in type_name(f.annotation)}


def test_the_reference_is_generated_from_the_settings_as_they_are():
    assert DOC.read_text() == markdown(), "regenerate: .venv/bin/python -m recmill.config_reference > docs/configuration.md"


def test_every_setting_has_a_meaning_and_every_params_key_is_listed():
    undescribed = [f"{name}.{key}" for name, _, own in sections(Settings) for key, f in own if not (f.description or "").strip()]
    assert undescribed == []
    listed = set(re.findall(r"^\| `([\w.]+)` \|", DOC.read_text(), flags=re.M))
    assert leaf_keys(yaml.safe_load(PARAMS.read_text())) <= listed
    assert len(listed) == sum(len(own) for _, _, own in sections(Settings))


def test_types_read_as_a_person_would_write_them():
    assert type_name(Literal["a", "b"]) == "a | b"
    assert type_name(int | None) == "int | null"
    assert type_name(list[int]) == "list[int]"
    assert type_name(dict[Literal["x"], float]) == "dict[x, float]"
    assert type_name(Annotated[int, Field(ge=1)] | Literal["auto"]) == "int | auto"
