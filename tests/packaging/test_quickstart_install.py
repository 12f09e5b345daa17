"""The README's Quickstart install line, run as typed: it installs the demo lock and nothing else.

A copy of the checkout gets a fresh `.venv` from the line in README.md (the package index is
used, as on a newcomer's machine); the versions installed must be exactly requirements/demo.txt's.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

from packaging.utils import canonicalize_name

from tests.docs.readme_blocks import sh_commands

ROOT = Path(__file__).resolve().parents[2]


def _quickstart_install_line() -> str:
    commands = sh_commands((ROOT / "README.md").read_text())
    (line,) = [c for c in commands if c.startswith("python3 -m venv .venv")]
    return line


def _checkout_copy(dest: Path) -> None:
    files = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    for name in files:
        src = ROOT / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)


def test_quickstart_install_gives_a_working_demo(tmp_path: Path) -> None:
    checkout = tmp_path / "millstream"
    _checkout_copy(checkout)
    line = _quickstart_install_line()
    result = subprocess.run(
        ["bash", "-c", line], cwd=checkout, capture_output=True, text=True, timeout=600, check=False
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    demo = subprocess.run(
        [str(checkout / ".venv/bin/millstream"), "demo", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert demo.returncode == 0, demo.stderr
    freeze = subprocess.run(
        [str(checkout / ".venv/bin/python"), "-m", "pip", "freeze", "--exclude-editable"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    installed = {
        canonicalize_name(m[1]): m[2] for m in re.finditer(r"^([^=\s]+)==(\S+)$", freeze, re.M)
    }
    locked = {
        canonicalize_name(m[1]): m[2]
        for m in re.finditer(
            r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^ ;\\]+)",
            (ROOT / "requirements/demo.txt").read_text(),
            re.M,
        )
    }
    extra = {n: v for n, v in installed.items() if locked.get(n) != v and n != "pip"}
    assert not extra, f"installed but not as locked: {extra}"
