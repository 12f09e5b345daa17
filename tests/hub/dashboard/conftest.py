"""Fixtures for the dashboard tests (helpers live in dashtest.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from dashtest import Proc


@pytest.fixture
def procs() -> Iterator[list[Proc]]:
    """Processes a test starts; killed (by PID) in reverse order at teardown."""
    started: list[Proc] = []
    yield started
    for p in reversed(started):
        p.close()
