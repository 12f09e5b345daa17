"""Fixture to write throwaway config and profile files."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from _config_helpers import Write


@pytest.fixture
def write(tmp_path: Path) -> Write:
    """Write `text` (dedented) to `name` under tmp_path and return its path."""

    def _write(name: str, text: str) -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text), encoding="utf-8")
        return path

    return _write
