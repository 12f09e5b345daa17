"""A buffer or state folder the agent's account may not write: one line and the fix, no traceback.

Runs the real `edge-agent` as the unprivileged account `nobody` (the tests run as root, to whom
permissions do not apply).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

EDGE_AGENT = str(Path(sys.executable).with_name("edge-agent"))


@pytest.fixture
def site() -> Iterator[Path]:
    """A folder `nobody` can read (pytest's own tmp folder is root's alone)."""
    root = Path(tempfile.mkdtemp(prefix="millstream-access-"))
    root.chmod(0o755)
    yield root
    shutil.rmtree(root)


def _as_nobody(*args: str) -> subprocess.CompletedProcess[str]:
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.fail("setpriv (util-linux) is needed to run the agent as another account")
    return subprocess.run(
        [setpriv, "--reuid=nobody", "--regid=nogroup", "--clear-groups", EDGE_AGENT, *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    ("buffer", "state", "named", "fix"),
    [
        ("locked/buffer.db", "open/state", "locked/buffer.db.lock", "install -d -o nobody"),
        ("open/buffer.db", "locked/state", "locked/state", "install -d -o nobody"),
    ],
)
def test_an_unwritable_folder_is_one_line_naming_path_account_and_fix(
    site: Path, buffer: str, state: str, named: str, fix: str
) -> None:
    (site / "locked").mkdir(mode=0o755)  # root's: nobody may not write here
    (site / "open").mkdir()
    (site / "open").chmod(0o777)  # mkdir's mode goes through the umask
    config = site / "agent.yaml"
    config.write_text(
        "agent: {id: perm-pc, site: plant-a, line: l1}\n"
        "mqtt: {url: 'mqtt://127.0.0.1:1'}\n"
        f"buffer: {{path: {site / buffer}}}\n"
        f"state_dir: {site / state}\n"
        "devices:\n"
        "  - {machine: m1, profile: sim-conveyor, modbus: {host: 127.0.0.1, port: 5020}}\n"
    )
    config.chmod(0o644)
    done = _as_nobody("run", str(config))
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 2, done.stderr  # no traceback
    assert lines[0].startswith(f"error: {site / named} is not writable for the account nobody")
    assert lines[1].startswith(f"next: sudo {fix}")
