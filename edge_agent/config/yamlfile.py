"""Read one YAML file into plain data plus the line of every key, or a located syntax problem.

Line numbers matter because a technician fixes a file in an editor: `line 14` beats a path
alone. Three YAML 1.1 traps are closed here rather than downstream: duplicate keys (PyYAML keeps
the last one silently); numbers with leading zeros (`00001` would load as octal 1, hiding a
0xxxx coil reference), which are kept as strings so the address check can see them; and the
words YAML 1.1 reads as booleans (`on`, `off`, `yes`, `no`): only `true` and `false` are, as in
YAML 1.2, so `event: {on: rising}` has a key `on` and a machine called `no` keeps its name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from edge_agent.errors import ConfigProblem
from millstream_common.locs import Loc, format_loc

__all__ = ["YamlDocument", "read_yaml"]

_LEADING_ZERO_INT = re.compile(r"^[-+]?0[0-9_]+$")


# libyaml's parser when PyYAML has it (every wheel we ship does): a 10,000-tag profile parses
# in a fraction of a second instead of seconds with the pure-Python one.
_Base: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Loader(_Base):  # type: ignore[valid-type,misc]
    """SafeLoader that keeps `0017`-style scalars as text instead of YAML 1.1 octal."""


_REPLACED = frozenset({"tag:yaml.org,2002:int", "tag:yaml.org,2002:bool"})
_Loader.yaml_implicit_resolvers = {
    key: [(tag, regexp) for tag, regexp in resolvers if tag not in _REPLACED]
    for key, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool",
    re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
    list("tTfF"),
)
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:int",
    re.compile(
        r"""^(?:[-+]?0b[0-1_]+
        |[-+]?0x[0-9a-fA-F_]+
        |[-+]?(?:0|[1-9][0-9_]*))$""",
        re.VERBOSE,
    ),
    list("-+0123456789"),
)


@dataclass(frozen=True, slots=True)
class YamlDocument:
    """Parsed YAML data with the 1-based line of each key path (`("tags", 3, "address")`)."""

    data: Any
    lines: dict[Loc, int] = field(default_factory=dict)

    def line_of(self, loc: Loc) -> int | None:
        """Return the line of `loc`, or of its nearest ancestor that has one."""
        for end in range(len(loc), -1, -1):
            line = self.lines.get(loc[:end])
            if line is not None:
                return line
        return None


def _walk(
    node: yaml.Node, loc: Loc, lines: dict[Loc, int], problems: list[tuple[Loc, int, str]]
) -> None:
    lines.setdefault(loc, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        seen: dict[object, int] = {}
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
            if not isinstance(key, str):
                continue
            line = key_node.start_mark.line + 1
            if key in seen:
                problems.append(((*loc, key), line, f"also set on line {seen[key]}"))
            seen[key] = line
            lines[(*loc, key)] = line
            _walk(value_node, (*loc, key), lines, problems)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _walk(item, (*loc, index), lines, problems)


def read_yaml(
    path: Path, *, shown_as: str | None = None
) -> tuple[YamlDocument | None, list[ConfigProblem]]:
    """Load `path`; return the document (None if unusable) and any problems found on the way."""
    name = shown_as or str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None, [ConfigProblem(name, "", "file not found", "check the path and spelling")]
    except UnicodeDecodeError as exc:
        return None, [ConfigProblem(name, "", f"not UTF-8 text ({exc.reason})", "save as UTF-8")]
    except OSError as exc:
        return None, [ConfigProblem(name, "", f"cannot read file: {exc.strerror}", "")]
    try:
        # Parsed once: the nodes give every key's line, and the data is built from them.
        loader = _Loader(text)
        try:
            node = loader.get_single_node()
            data = None if node is None else loader.construct_document(node)
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "unknown position"
        what = exc.problem or "invalid YAML"
        return None, [
            ConfigProblem(
                name,
                "",
                f"YAML syntax error at {where}: {what}",
                "check indentation (spaces, not tabs) and that every `key: value` has a space "
                "after the colon; quote values containing `: ` or `#`",
                line=mark.line + 1 if mark else None,
            )
        ]
    except yaml.YAMLError as exc:
        return None, [ConfigProblem(name, "", f"YAML error: {exc}", "")]
    lines: dict[Loc, int] = {}
    duplicates: list[tuple[Loc, int, str]] = []
    if node is not None:
        _walk(node, (), lines, duplicates)
    problems = [
        ConfigProblem(
            name,
            format_loc(loc),
            f"key {loc[-1]!r} appears twice ({detail})",
            "keep one; YAML would silently use the last",
            line=line,
        )
        for loc, line, detail in duplicates
    ]
    return YamlDocument(data, lines), problems
