"""The harness itself: failures are loud and explained, and CI allows no skips."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.harness import REPO, Mosquitto, Redis, ServerError

pytestmark = pytest.mark.services


class _BrokenRedis(Redis):
    def _argv(self) -> list[str]:
        return [*super()._argv(), "--no-such-directive", "x"]


def test_a_server_that_exits_fails_start_with_its_log_tail() -> None:
    server = _BrokenRedis()
    try:
        with pytest.raises(ServerError) as failure:
            server.start()
    finally:
        server.cleanup()
    message = str(failure.value)
    assert "redis exited with code" in message
    assert "no-such-directive" in message  # redis-server's own complaint, from the log tail


def test_a_fixed_port_in_use_fails_start(mosquitto: Mosquitto) -> None:
    intruder = Mosquitto(port=mosquitto.port)
    try:
        with pytest.raises(ServerError, match=r"(?i)address already in use"):
            intruder.start()
    finally:
        intruder.cleanup()
    assert mosquitto.running


def test_ci_counts_skips_as_failures(tmp_path: Path) -> None:
    (tmp_path / "test_skipping.py").write_text(
        "import pytest\n"
        "def test_skips():\n"
        "    pytest.skip('no server')\n"
        "@pytest.mark.xfail(reason='known')\n"
        "def test_expected_failure():\n"
        "    raise AssertionError\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO), "CI": "true"}
    argv = [sys.executable, "-m", "pytest", "-p", "tests.conftest", "-p", "no:cacheprovider"]
    done = subprocess.run(
        [*argv, "-q", "-o", "addopts=", str(tmp_path)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "1 failed, 1 xfailed" in done.stdout
    assert "skipped under CI=true, which allows no skips: Skipped: no server" in done.stdout
