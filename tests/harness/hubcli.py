"""`millstream-hub` run to the end for a test: `hub_cli(config, "users", "api-key", "add", …)`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

__all__ = ["HUB", "hub_cli"]

HUB = str(Path(sys.executable).with_name("millstream-hub"))


def hub_cli(config: Path, *args: str) -> str:
    """stdout of `millstream-hub ARGS --config CONFIG`; the test fails on a non-zero exit."""
    done = subprocess.run(
        [HUB, *args, "--config", str(config)], capture_output=True, text=True, timeout=60,
        check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout
