"""Parse profile browse paths like `/Objects/2:Machine/2:Spindle/2:Speed` into qualified names."""

from __future__ import annotations

__all__ = ["QualifiedName", "format_browse_path", "parse_browse_path"]

QualifiedName = tuple[int, str]


def parse_browse_path(path: str) -> list[QualifiedName]:
    """Split a path from the Root folder into (namespace index, name) steps; ns 0 if omitted."""
    if not path.startswith("/"):
        raise ValueError(f"browse path {path!r} must start at the root, e.g. /Objects/2:Machine")
    steps: list[QualifiedName] = []
    for segment in path.strip("/").split("/"):
        if not segment:
            raise ValueError(f"browse path {path!r} has an empty segment")
        ns_text, sep, name = segment.partition(":")
        if sep and ns_text.isdigit():
            steps.append((int(ns_text), name))
        else:
            steps.append((0, segment))
    return steps


def format_browse_path(steps: list[QualifiedName]) -> str:
    """Inverse of `parse_browse_path`: ns 0 names are written without a prefix."""
    return "/" + "/".join(name if ns == 0 else f"{ns}:{name}" for ns, name in steps)
