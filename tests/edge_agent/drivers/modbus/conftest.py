"""Fixtures for the Modbus driver tests: a virtual serial line from socat."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator

import pytest


@pytest.fixture
def pty_pair() -> Iterator[tuple[str, str]]:
    """Two linked pseudo-terminals from socat: a virtual RS-485 line with two ends."""
    proc = subprocess.Popen(
        ["socat", "-d", "-d", "pty,raw,echo=0", "pty,raw,echo=0"],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr is not None
        ttys: list[str] = []
        while len(ttys) < 2:
            line = proc.stderr.readline()
            if not line:
                raise RuntimeError("socat exited before opening its ptys")
            if found := re.search(r"PTY is (\S+)", line):
                ttys.append(found.group(1))
        yield ttys[0], ttys[1]
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        if proc.stderr is not None:
            proc.stderr.close()
