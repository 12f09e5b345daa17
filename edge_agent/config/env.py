"""`MILLSTREAM_…` environment variables override any key of the agent config file.

Naming rule: `MILLSTREAM_` + the key path in capitals, levels joined by a double underscore,
list entries by their 0-based index: `MILLSTREAM_MQTT__URL`, `MILLSTREAM_AGENT__ID`,
`MILLSTREAM_BUFFER__MAX_BYTES`, `MILLSTREAM_DEVICES__0__MODBUS__HOST`. Values are read like a
YAML scalar (`502` is a number, `mqtt://...` text), so they mean what they would in the file.
Only variables whose first level is a section of the file count; others such as
`MILLSTREAM_PROFILE_PATH` or another deployable's settings are left alone.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import yaml

from edge_agent.config.locs import Loc, format_loc
from edge_agent.errors import ConfigProblem

__all__ = ["ENV_PREFIX", "SECTIONS", "apply_env_overrides", "env_name"]

ENV_PREFIX = "MILLSTREAM_"
SECTIONS = frozenset({"agent", "mqtt", "buffer", "devices"})


def env_name(loc: Loc) -> str:
    """Return the variable that overrides `loc`: ("mqtt", "url") -> MILLSTREAM_MQTT__URL."""
    return ENV_PREFIX + "__".join(str(part).upper() for part in loc)


def _parse_value(text: str) -> Any:
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    # Only scalars: a variable cannot replace a whole section or list by accident.
    return value if isinstance(value, str | int | float | bool) else text


def apply_env_overrides(
    data: Any, env: Mapping[str, str]
) -> tuple[Any, dict[Loc, str], list[ConfigProblem]]:
    """Return a copy of `data` with overrides applied, where each came from, and any problems."""
    result = copy.deepcopy(data) if isinstance(data, dict) else {}
    origins: dict[Loc, str] = {}
    problems: list[ConfigProblem] = []
    for name in sorted(env):
        if not name.startswith(ENV_PREFIX) or "__" not in name:
            continue
        parts = name[len(ENV_PREFIX) :].lower().split("__")
        if parts[0] not in SECTIONS:
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
            node[part] = value
        else:
            if node.get(part) is None:
                node[part] = {}
            node = node[part]
    return None
