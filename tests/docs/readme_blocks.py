"""README.md read the way tests/docs needs it: fenced blocks, the commands in ```sh blocks, and
inline code in prose that looks like a command.

Convention (the extractor relies on it, so README.md must follow it):

- A ```sh fence holds commands only, one per line, exactly as a reader types them. A line ending
  in a backslash continues on the next. A `#` after two or more spaces starts a comment, and a
  line that starts with `#` is a comment; neither is part of the command.
- Output, config and diagrams go in ```text or ```yaml (or ```json) fences, never in ```sh.
- A fence without a language is not allowed: the reader could not tell which of the two it is.
- Inline code in prose that starts with a program name (`edge-agent probe CONFIG ...`) must name
  a command that a ```sh block shows, so prose never mentions a command no test runs.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "COMMAND_FENCE",
    "PROGRAMS",
    "Block",
    "blocks",
    "inline_commands",
    "sh_commands",
    "unmatched_inline",
]

COMMAND_FENCE = "sh"
OTHER_FENCES = frozenset({"text", "yaml", "json"})
# Inline code whose first word is one of these is a command mention (see the module docstring);
# so is a path to a repository script (`scripts/test`, `packaging/offline-bundle.sh`).
PROGRAMS = frozenset(
    {
        "edge-agent",
        "millstream-hub",
        "millstream",
        "docker",
        "docker-compose",
        "sudo",
        "systemctl",
        "journalctl",
        "curl",
        "pg_dump",
        "pg_restore",
        "sqlite3",
        "openssl",
        "pip",
        "python",
        "python3",
        "tar",
        "useradd",
    }
)

_FENCE = re.compile(r"^(\s*)```(.*)$")
_COMMENT = re.compile(r"\s{2,}#.*$")
_INLINE = re.compile(r"`([^`\n]+)`")


@dataclass(frozen=True)
class Block:
    """One fenced block: its language (the word after the fence) and its lines."""

    language: str
    lines: tuple[str, ...]
    first_line: int


def blocks(text: str) -> list[Block]:
    """Every fenced block in `text`, indentation of the fence removed from its lines."""
    found: list[Block] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        opening = _FENCE.match(lines[i])
        if not opening:
            i += 1
            continue
        indent, language = opening.group(1), opening.group(2).strip()
        body: list[str] = []
        j = i + 1
        while j < len(lines) and lines[j].strip() != "```":
            body.append(lines[j].removeprefix(indent))
            j += 1
        found.append(Block(language, tuple(body), i + 1))
        i = j + 1
    return found


def sh_commands(text: str) -> list[str]:
    """The commands of every ```sh block, in order, comments removed, continuations joined."""
    commands: list[str] = []
    for block in blocks(text):
        if block.language != COMMAND_FENCE:
            continue
        pending = ""
        for raw in block.lines:
            line = raw.strip()
            if not pending and (not line or line.startswith("#")):
                continue
            if line.endswith("\\"):
                pending += line[:-1].strip() + " "
                continue
            command = _COMMENT.sub("", pending + line).strip()
            pending = ""
            if command and command not in commands:
                commands.append(command)
    return commands


def _prose(text: str) -> str:
    """`text` without its fenced blocks."""
    out: list[str] = []
    inside = False
    for line in text.splitlines():
        if _FENCE.match(line):
            inside = not inside
            continue
        if not inside:
            out.append(line)
    return "\n".join(out)


def inline_commands(text: str) -> list[str]:
    """Inline code spans in prose that start with a program name."""
    spans = [m.group(1).strip() for m in _INLINE.finditer(_prose(text))]
    return [s for s in spans if _is_command(s)]


def _is_command(span: str) -> bool:
    first = span.split(maxsplit=1)[0]
    if first in PROGRAMS or first.startswith(".venv/bin/"):
        return True
    return "/" in first and (first.endswith(".sh") or first.startswith("scripts/"))


def _words(command: str) -> list[str]:
    try:
        return shlex.split(command)
    except ValueError:
        return command.split()


def unmatched_inline(text: str) -> list[str]:
    """Inline command mentions whose program and subcommands, and every option, no sh command has.

    The leading words up to the first placeholder (upper case like CONFIG, `…`, or an option)
    must appear in that order in one sh command; each `--option` of the mention must appear in
    that same command.
    """
    commands = [_words(c) for c in sh_commands(text)]
    missing: list[str] = []
    for mention in inline_commands(text):
        words = _words(mention)
        head: list[str] = []
        for word in words:
            if word.startswith("-") or word.isupper() or "…" in word or "|" in word:
                break
            head.append(word)
        options = [w.split("=")[0] for w in words if w.startswith("--")]
        if not any(_contains(cmd, head) and all(o in cmd for o in options) for cmd in commands):
            missing.append(mention)
    return missing


def _contains(words: list[str], part: list[str]) -> bool:
    if not part:
        return False
    flat = " ".join(words)
    return " ".join(part) in flat


def read(path: Path) -> str:
    """The README's text."""
    return path.read_text(encoding="utf-8")
