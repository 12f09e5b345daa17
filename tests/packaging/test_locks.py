"""requirements/*.txt: the locks every install in CI, the images and the offline bundle uses.

They must agree with pyproject.toml (a range changed without `scripts/lock` fails here, before a
fresh machine installs something nobody tested), with each other (one version of a package
everywhere), and carry a hash for every pin (pip --require-hashes).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
LOCKS = ROOT / "requirements"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
# Which lock holds which extras (scripts/lock): dev holds every extra.
EXTRAS = {
    "agent.txt": ["agent"],
    "hub.txt": ["hub"],
    "demo.txt": ["agent", "hub", "demo"],
    "dev.txt": ["agent", "hub", "demo", "dev"],
}
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^ ;\\]+)( ; [^\\]+?)? *\\?$")


def _pins(name: str) -> dict[str, str]:
    pins: dict[str, str] = {}
    lines = (LOCKS / name).read_text().splitlines()
    for i, line in enumerate(lines):
        m = PIN.match(line)
        if not m:
            continue
        assert lines[i + 1].strip().startswith("--hash=sha256:"), f"{name}: {m[1]} has no hash"
        pins[canonicalize_name(m[1])] = m[2]
    assert pins, f"{name} pins nothing"
    return pins


def _wanted(extras: list[str]) -> list[Requirement]:
    optional = PYPROJECT["project"]["optional-dependencies"]
    reqs = [Requirement(r) for r in PYPROJECT["project"]["dependencies"]]
    for extra in extras:
        reqs += [Requirement(r) for r in optional[extra] if not r.startswith("millstream[")]
    return reqs


@pytest.mark.parametrize(("lock", "extras"), EXTRAS.items())
def test_lock_pins_every_dependency_within_pyprojects_range(lock: str, extras: list[str]) -> None:
    pins = _pins(lock)
    for req in _wanted(extras):
        if req.marker is not None and not req.marker.evaluate():
            continue
        name = canonicalize_name(req.name)
        assert name in pins, f"{lock} lacks {req.name}: run scripts/lock"
        assert req.specifier.contains(pins[name], prereleases=True), (
            f"{lock} pins {req.name}=={pins[name]}, outside {req.specifier}: run scripts/lock"
        )


@pytest.mark.parametrize("lock", ["agent.txt", "hub.txt", "demo.txt", "build.txt"])
def test_one_version_of_a_package_everywhere(lock: str) -> None:
    dev = _pins("dev.txt")
    for name, version in _pins(lock).items():
        if name in dev:
            assert dev[name] == version, f"{lock} has {name}=={version}, dev.txt {dev[name]}"


def test_build_lock_holds_the_build_backend() -> None:
    pins = _pins("build.txt")
    for raw in PYPROJECT["build-system"]["requires"]:
        req = Requirement(raw)
        assert req.specifier.contains(pins[canonicalize_name(req.name)])


def test_agent_lock_holds_nothing_of_the_hub() -> None:
    pins = _pins("agent.txt")
    for hub_only in ("fastapi", "asyncpg", "confluent-kafka", "uvicorn", "redis"):
        assert hub_only not in pins


def test_locks_name_no_index() -> None:
    """No index or mirror address in the locks: they work with whatever index pip is set to."""
    for lock in LOCKS.glob("*.txt"):
        text = lock.read_text()
        assert "://" not in text, lock.name
        assert "--index-url" not in text, lock.name


def test_refresh_keeps_every_pin(tmp_path: Path) -> None:
    """`scripts/lock` with pyproject.toml unchanged moves no version (it needs the package index).

    Only versions are compared: the index may since carry another file of a pinned version, whose
    hash a refresh rightly adds.
    """
    copy = tmp_path / "checkout"
    for part in ("pyproject.toml", "requirements", "scripts"):
        src = ROOT / part
        if src.is_dir():
            shutil.copytree(src, copy / part)
        else:
            copy.mkdir(exist_ok=True)
            shutil.copy2(src, copy / part)
    # The copy has no .venv: the running venv's uv (from requirements/dev.txt) does the work.
    uv = Path(sys.executable).parent / "uv"
    result = subprocess.run(
        ["bash", str(copy / "scripts/lock")],
        env={**os.environ, "UV": str(uv)},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    for lock in sorted(LOCKS.glob("*.txt")):
        refreshed = copy / "requirements" / lock.name
        assert _pins_of(refreshed) == _pins_of(lock), f"{lock.name}: run scripts/lock"


def _pins_of(path: Path) -> dict[str, str]:
    return {m[1]: m[2] for m in map(PIN.match, path.read_text().splitlines()) if m}
