"""Text of valid config and profile files for the config tests to break."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

GOOD_PROFILE = """\
profile: {name}
vendor: Test
model: T1
protocol: modbus
source: test fixture
defaults: {{order: ABCD, poll_ms: 1000}}
tags:
{tags}
"""

GOOD_CONFIG = """\
agent: {{id: line3-pc, site: plant-a, line: line-3}}
mqtt: {{url: "mqtt://127.0.0.1:1883"}}
buffer: {{path: ./buffer.db, max_bytes: 1GiB, max_age: 7d}}
devices:
  - machine: meter-01
    profile: {profile}
    modbus: {{host: 127.0.0.1, port: 502, unit: 1, timeout_ms: 1000}}
"""

Write = Callable[[str, str], Path]


def profile_text(tags: str, name: str = "test-device") -> str:
    """A valid profile around the given tag lines (each `  - {...}`)."""
    return GOOD_PROFILE.format(name=name, tags=textwrap.dedent(tags).rstrip())


def config_text(profile: str = "test-device") -> str:
    """A valid config with one TCP device using `profile`."""
    return GOOD_CONFIG.format(profile=profile)
