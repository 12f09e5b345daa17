"""Numbered SQL migrations, one folder per backend: `NNNN_name.sql`, applied in order."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from typing import Literal

__all__ = ["Migration", "load_migrations"]


@dataclass(frozen=True, slots=True)
class Migration:
    """One schema step: its number, file name and SQL text."""

    version: int
    name: str
    sql: str


def load_migrations(backend: Literal["postgresql", "sqlite"]) -> list[Migration]:
    """Every migration shipped for the backend, in version order."""
    folder = resources.files(__package__).joinpath(backend)
    found = []
    for entry in folder.iterdir():
        if entry.name.endswith(".sql") and entry.name[:4].isdigit():
            found.append(Migration(int(entry.name[:4]), entry.name, entry.read_text("utf-8")))
    found.sort(key=lambda m: m.version)
    return found
