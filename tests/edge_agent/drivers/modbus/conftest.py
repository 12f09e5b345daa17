"""Fixtures for the Modbus driver tests: a virtual serial line from socat."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.harness.devicestate import socat_pty_pair


@pytest.fixture
def pty_pair() -> Iterator[tuple[str, str]]:
    """Two linked pseudo-terminals from socat: a virtual RS-485 line with two ends."""
    with socat_pty_pair() as pair:
        yield pair
