"""Turn pydantic validation errors into problems a technician can act on: file, path, hint.

pydantic's messages say what is wrong; the hints here say what to type instead: the closest
valid key for a misspelt one, the closest allowed value, the shape of a missing section.
"""

from __future__ import annotations

import difflib
import re
import types
import typing
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from edge_agent.config.issues import ERROR_TYPE
from edge_agent.config.yamlfile import YamlDocument
from edge_agent.drivers.modbus.types import TYPES as MODBUS_TYPES
from edge_agent.drivers.modbus.types import Table
from edge_agent.errors import ConfigProblem
from millstream_common.locs import Loc, format_loc

__all__ = ["closest", "problems_from_validation"]

# What to write for a required key that is missing, by key name.
_MISSING_HINTS: dict[str, str] = {
    "agent": "add agent: {id: line3-pc, site: plant-a, line: line-3}",
    "mqtt": 'add mqtt: {url: "mqtt://127.0.0.1:1883"}',
    "devices": "add devices: a list of - machine: NAME, profile: PROFILE, modbus: {...}",
    "id": "the agent's own name: 1-64 letters, digits, _ or -",
    "site": "the plant or site name: 1-64 letters, digits, _ or -",
    "line": "the production line name: 1-64 letters, digits, _ or -",
    "machine": "the machine's name as it appears on dashboards: 1-64 letters, digits, _ or -",
    "profile": "a profile name from device_profiles/ (e.g. eastron-sdm630) or a path to a .yaml",
    "url": 'e.g. "mqtt://127.0.0.1:1883" (opcua: "opc.tcp://HOST:4840")',
    "name": "the tag name: 1-64 letters, digits, _ or -, unique in the profile",
    "table": "one of " + ", ".join(typing.get_args(Table)),
    "address": "the 0-based register address from the register map (hex column; 4xxxx minus "
    "40001), or the manual's 4xxxx number itself with addressing: reference in the profile",
    "type": "one of " + ", ".join(MODBUS_TYPES),
    "protocol": "modbus or opcua",
    "vendor": "the manufacturer, e.g. Eastron",
    "model": "the device model as the vendor names it",
    "source": "the vendor document the register map comes from (title, version, date)",
    "tags": "add tags: a list of - name: ..., table: ..., address: ..., type: ...",
    "kind": "absolute or percent",
    "value": "the deadband width",
}

_SHAPE_HINTS: dict[str, str] = {
    "model_type": "this must be a mapping of keys (key: value lines indented below it)",
    "dict_type": "this must be a mapping of keys (key: value lines indented below it)",
    "tuple_type": "this must be a list: one `- ` entry per item",
    "list_type": "this must be a list: one `- ` entry per item",
    "string_type": "write text; quote it if YAML reads it as a number or true/false",
    "int_type": "write a whole number",
    "int_parsing": "write a whole number",
    "int_from_float": "write a whole number",
    "float_parsing": "write a number",
    "float_type": "write a number",
    "finite_number": "write a finite number",
    "string_pattern_mismatch": "use 1-64 characters: letters, digits, _ or -",
}

_VALUE_HINTS: dict[str, str] = {
    "max_bytes": "write a size such as 500MB or 1GiB",
    "max_age": "write a duration such as 12h or 7d",
}

_QUOTED = re.compile(r"'([^']*)'|(-?\d+)")


def closest(word: str, choices: typing.Iterable[str]) -> str | None:
    """Return the choice closest to `word` (case-insensitive; ties go to the earlier choice)."""
    best: tuple[float, str] | None = None
    for choice in choices:
        if choice.lower() == word.lower():
            return choice
        ratio = difflib.SequenceMatcher(None, word.lower(), choice.lower()).ratio()
        if ratio >= 0.6 and (best is None or ratio > best[0]):
            best = (ratio, choice)
    return best[1] if best else None


def _unwrap(annotation: Any) -> list[Any]:
    """Return the model or element types inside Optional/Union/Annotated/list/tuple."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _unwrap(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType, list, tuple):
        return [inner for arg in typing.get_args(annotation) for inner in _unwrap(arg)]
    return [annotation]


def _model_at(root: type[BaseModel], loc: Loc) -> type[BaseModel] | None:
    """Return the model class that validates the mapping at `loc`."""
    current: type[BaseModel] | None = root
    for part in loc:
        if current is None:
            return None
        if isinstance(part, int):
            continue
        info = current.model_fields.get(part)
        if info is None:
            return None
        models = [
            t for t in _unwrap(info.annotation) if isinstance(t, type) and issubclass(t, BaseModel)
        ]
        current = models[0] if models else None
    return current


def _hint(error: ErrorDetails, root: type[BaseModel]) -> str:  # noqa: PLR0911 -- a lookup table
    kind = error["type"]
    loc = tuple(error["loc"])
    key = next((part for part in reversed(loc) if isinstance(part, str)), "")
    ctx: Mapping[str, Any] = error.get("ctx") or {}
    if kind == ERROR_TYPE:
        return str(ctx.get("hint", ""))
    if kind == "extra_forbidden":
        model = _model_at(root, loc[:-1])
        valid = sorted(model.model_fields) if model else []
        guess = closest(key, valid)
        if guess:
            return f"did you mean {guess}?"
        return f"valid keys here: {', '.join(valid)}" if valid else "remove it"
    if kind == "missing":
        return _MISSING_HINTS.get(key, f"add {key}: ...")
    if kind in ("literal_error", "enum"):
        allowed = [a or b for a, b in _QUOTED.findall(str(ctx.get("expected", "")))]
        given = error["input"]
        guess = closest(str(given), allowed) if given is not None else None
        if guess and guess != given:
            return f"did you mean {guess}?"
        return f"use one of {', '.join(allowed)}"
    if kind == "value_error":
        return _VALUE_HINTS.get(key, "")
    if kind == "string_pattern_mismatch" and isinstance(error["input"], str):
        fixed = re.sub(r"[^A-Za-z0-9_-]+", "-", error["input"]).strip("-")[:64]
        if fixed:
            return f"use 1-64 characters: letters, digits, _ or -, e.g. {fixed}"
    return _SHAPE_HINTS.get(kind, "")


def _message(error: ErrorDetails) -> str:
    message = error["msg"].removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        return f"unknown key {error['loc'][-1]!r}"
    if error["type"] == "missing":
        return f"required key {error['loc'][-1]!r} is missing"
    if error["type"] == "string_pattern_mismatch":
        return f"{error['input']!r} is not a valid name"
    given = error["input"]
    if error["type"] != ERROR_TYPE and isinstance(given, str | int | float) and given != "":
        message = f"{given!r}: {message}"
    return message


def problems_from_validation(
    exc: ValidationError,
    *,
    root: type[BaseModel],
    file: str,
    prefix: str = "",
    document: YamlDocument | None = None,
    env_origins: Mapping[Loc, str] | None = None,
) -> list[ConfigProblem]:
    """Return one ConfigProblem per error in `exc`, in `file` or the env var that set it."""
    problems: list[ConfigProblem] = []
    for error in exc.errors():
        loc: Loc = tuple(error["loc"])
        path = prefix + format_loc(loc) if loc else prefix.removesuffix(": ")
        origin = _env_origin(loc, env_origins or {})
        where, line = (
            (f"environment {origin}", None)
            if origin
            else (file, document.line_of(loc) if document else None)
        )
        problems.append(ConfigProblem(where, path, _message(error), _hint(error, root), line))
    return problems


def _env_origin(loc: Loc, origins: Mapping[Loc, str]) -> str | None:
    for end in range(len(loc), 0, -1):
        name = origins.get(loc[:end])
        if name is not None:
            return name
    return None
