"""A buffer or state folder the agent's account may not write: one line and the fix, no traceback.

The tests run as root, to whom file permissions do not apply; the real `edge-agent` is run as root
without the capabilities that bypass them (DAC override), so a folder owned by another account
refuses it as it refuses any service account. (Running it as `nobody` instead would need the
checkout itself to be readable by `nobody`, which a CI clone need not be.)
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

EDGE_AGENT = str(Path(sys.executable).with_name("edge-agent"))
_BYPASS = "-dac_override,-dac_read_search,-fowner"


def _without_bypass(*args: str) -> subprocess.CompletedProcess[str]:
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.fail("setpriv (util-linux) is needed to run the agent without DAC override")
    return subprocess.run(
        [setpriv, f"--bounding-set={_BYPASS}", "--inh-caps=-all", EDGE_AGENT, *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    ("buffer", "state", "named"),
    [
        ("locked/buffer.db", "open/state", "locked/buffer.db.lock"),
        ("open/buffer.db", "locked/state", "locked/state"),
    ],
)
def test_an_unwritable_folder_is_one_line_naming_path_account_and_fix(
    tmp_path: Path, buffer: str, state: str, named: str
) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    nobody = pwd.getpwnam("nobody")
    os.chown(locked, nobody.pw_uid, nobody.pw_gid)  # someone else's: we may only read it
    locked.chmod(0o755)
    (tmp_path / "open").mkdir()
    config = tmp_path / "agent.yaml"
    config.write_text(
        "agent: {id: perm-pc, site: plant-a, line: l1}\n"
        "mqtt: {url: 'mqtt://127.0.0.1:1'}\n"
        f"buffer: {{path: {tmp_path / buffer}}}\n"
        f"state_dir: {tmp_path / state}\n"
        "devices:\n"
        "  - {machine: m1, profile: sim-conveyor, modbus: {host: 127.0.0.1, port: 5020}}\n"
    )
    done = _without_bypass("run", str(config))
    assert done.returncode == 1, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 2, done.stderr  # no traceback
    me = pwd.getpwuid(os.geteuid()).pw_name
    assert lines[0].startswith(f"error: {tmp_path / named} is not writable for the account {me}")
    assert lines[1].startswith(f"next: sudo install -d -o {me} ")
