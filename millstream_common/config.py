"""What the agent and the hub share about config files: `ConfigProblem` (one thing wrong,
located precisely enough to fix it) and `MILLSTREAM_…` environment overrides.

Override naming: `MILLSTREAM_` + the key path in capitals, levels joined by a double underscore,
list entries by their 0-based index: `MILLSTREAM_MQTT__URL`, `MILLSTREAM_STORAGE`,
`MILLSTREAM_DEVICES__0__MODBUS__HOST`. Values are read like YAML (`502` is a number,
`mqtt://…` text, `[a, b]` a list, `null` switches an optional section off), so they mean what
they would in the file; a variable cannot write a whole section. Only variables whose first
level is a key the caller names count; others with the prefix (`MILLSTREAM_PROFILE_PATH`, a
password named by `password_env`) are left alone.
"""

from __future__ import annotations

import copy
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from millstream_common.locs import Loc, format_loc

__all__ = ["ENV_PREFIX", "ConfigProblem", "apply_env_overrides", "env_name"]

ENV_PREFIX = "MILLSTREAM_"


@dataclass(frozen=True, slots=True)
class ConfigProblem:
    """One thing wrong in a config or profile file, located precisely enough to fix it."""

    file: str
    path: str
    message: str
    hint: str = ""
    line: int | None = None  # 1-based line in `file`, when known

    def __str__(self) -> str:
        place = f"{self.file}:{self.line}" if self.line else self.file
        where = f"{place}: {self.path}" if self.path else place
        text = f"{where}: {self.message}"
        return f"{text} (hint: {self.hint})" if self.hint else text


def env_name(loc: Loc) -> str:
    """Return the variable that overrides `loc`: ("mqtt", "url") -> MILLSTREAM_MQTT__URL."""
    return ENV_PREFIX + "__".join(str(part).upper() for part in loc)


def _parse_value(text: str) -> Any:
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    scalar = str | int | float | bool
    if value is None or isinstance(value, scalar):
        return value
    if isinstance(value, list) and all(isinstance(v, scalar) for v in value):
        return value
    return text  # a mapping stays text: a variable never writes a section


def apply_env_overrides(
    data: Any, env: Mapping[str, str], keys: Collection[str]
) -> tuple[dict[str, Any], dict[Loc, str], list[ConfigProblem]]:
    """A copy of `data` with the overrides for top-level `keys` applied, where each value came
    from, and a problem for each variable that names no place the file could have."""
    result = copy.deepcopy(data) if isinstance(data, dict) else {}
    origins: dict[Loc, str] = {}
    problems: list[ConfigProblem] = []
    for name in sorted(env):
        if not name.startswith(ENV_PREFIX):
            continue
        parts = name[len(ENV_PREFIX) :].lower().split("__")
        if parts[0] not in keys:
            continue
        loc: Loc = tuple(int(p) if p.isdigit() else p for p in parts)
        problem = _set(result, loc, _parse_value(env[name]))
        if problem:
            problems.append(ConfigProblem(f"environment {name}", format_loc(loc), *problem))
        else:
            origins[loc] = name
    return result, origins, problems


def _set(data: dict[str, Any], loc: Loc, value: Any) -> tuple[str, str] | None:
    """Set `value` at `loc`; return (message, hint) when the path cannot exist."""
    node: Any = data
    for depth, part in enumerate(loc):
        last = depth == len(loc) - 1
        if isinstance(part, int):
            if not isinstance(node, list) or part >= len(node):
                size = len(node) if isinstance(node, list) else 0
                return (
                    f"{format_loc(loc[:depth])} has {size} entries, there is no [{part}]",
                    "list entries are numbered from 0; a variable can change an entry of the "
                    "file but not add one",
                )
            if last:
                node[part] = value
            else:
                node = node[part]
            continue
        if not isinstance(node, dict) or part == "":
            return (
                f"cannot set {format_loc(loc)}",
                "separate levels with a double underscore: MILLSTREAM_SECTION__KEY",
            )
        if last:
            # `null` switches an optional section off (MILLSTREAM_KAFKA=null); anything else
            # would replace a section by accident.
            if isinstance(node.get(part), dict) and value is not None:
                return (
                    f"{format_loc(loc)} is a section; a variable sets one key of it",
                    f"name the key: {env_name(loc)}__KEY, or null to switch the section off",
                )
            node[part] = value
        else:
            if node.get(part) is None:
                node[part] = {}
            node = node[part]
    return None
