"""docs/configuration.md, generated from the typed settings: every key of params.yaml with
its type, default and meaning. `python -m recmill.config_reference > docs/configuration.md`
rewrites it; a test keeps the file and the settings in step."""

from __future__ import annotations

import json
import typing
from pathlib import Path

import yaml
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from recmill.config import Settings

PARAMS = Path(__file__).resolve().parents[1] / "params.yaml"
HEADER = """# Configuration reference

Every key of params.yaml: its type, its default (what a key left out of params.yaml
takes), the value the project's params.yaml gives it, and what it does. Any key can be
given on the command line too, e.g. `recmill run --set models.als.factors=64`. Unknown
keys are errors. This file is generated from recmill/config.py and params.yaml
(`.venv/bin/python -m recmill.config_reference > docs/configuration.md`).
"""
BOUNDS = (("ge", "≥"), ("gt", ">"), ("le", "≤"), ("lt", "<"))


def type_name(annotation) -> str:
    """A reader's name for a setting's type: `per_user | global_time`, `int | null`, `list[int]`."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Literal:
        return " | ".join(str(a) for a in args)
    if origin is typing.Union or type(annotation).__name__ == "UnionType":
        return " | ".join(type_name(a) for a in args)
    if origin is typing.Annotated:
        return type_name(args[0])
    if annotation is type(None):
        return "null"
    if origin is not None:
        return f"{getattr(origin, '__name__', str(origin))}[{', '.join(type_name(a) for a in args)}]"
    return getattr(annotation, "__name__", str(annotation))


def bounds(field: FieldInfo) -> str:
    return "".join(f", {sign} {getattr(m, name)}" for m in field.metadata for name, sign in BOUNDS if hasattr(m, name))


def shown(value) -> str:
    if isinstance(value, Path):
        value = str(value)
    return json.dumps(value, default=str, ensure_ascii=False)


def cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def sections(model: type[BaseModel], prefix: str = "") -> list[tuple[str, type[BaseModel], list[tuple[str, FieldInfo]]]]:
    """(dotted name, model class, its own settings) for the model and every section inside it."""
    own, nested = [], []
    for name, field in model.model_fields.items():
        if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel):
            nested += sections(field.annotation, f"{prefix}{name}.")
        else:
            own.append((name, field))
    return [(prefix.rstrip("."), model, own), *nested]


def in_params(params: dict, dotted: str) -> str:
    value = params
    for part in dotted.split("."):
        if not isinstance(value, dict) or part not in value:
            return ""
        value = value[part]
    return f"`{cell(shown(value))}`"


def markdown(params_file: Path = PARAMS) -> str:
    params = yaml.safe_load(params_file.read_text()) if params_file.exists() else {}
    parts = [HEADER]
    for name, model, own in sections(Settings):
        if not own:
            continue
        parts.append(f"\n## {name or 'top level'}\n")
        if model.__doc__ and model is not Settings and not model.__doc__.startswith(model.__name__ + "("):
            parts.append(f"\n{' '.join(model.__doc__.split())}\n")
        parts.append("\n| key | type | default | params.yaml | meaning |\n| --- | --- | --- | --- | --- |\n")
        for key, field in own:
            dotted = f"{name}.{key}" if name else key
            default = field.get_default(call_default_factory=True)
            parts.append(
                f"| `{dotted}` | {cell(type_name(field.annotation) + bounds(field))} | `{cell(shown(default))}` "
                f"| {in_params(params, dotted)} | {cell(field.description or '')} |\n"
            )
    return "".join(parts)


if __name__ == "__main__":
    print(markdown(), end="")
