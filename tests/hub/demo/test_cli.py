"""`millstream` command line: version, and a demo that cannot take its port says so at once."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

MILLSTREAM = Path(sys.executable).parent / "millstream"


def test_version() -> None:
    done = subprocess.run(
        [str(MILLSTREAM), "--version"], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0
    assert done.stdout.startswith("millstream ")


def test_demo_refuses_a_port_in_use_and_says_what_to_do(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [str(MILLSTREAM), "demo", "--data-dir", str(tmp_path / "d"), "--port", str(port)],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"127.0.0.1:{port} is in use" in done.stderr
    assert "pass --port" in done.stderr
    assert not (tmp_path / "d" / "hub.db").exists()  # nothing was started
