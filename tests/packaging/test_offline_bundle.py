"""packaging/offline-bundle.sh: an air-gapped line PC installs the agent from one tarball.

The bundle is built once per session (the package index may be used at build time, through the
wheel cache in ~/.cache/millstream/wheels, so later runs are fast), then installed into a fresh
virtualenv with every route to an index closed.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from packaging.utils import canonicalize_name, parse_wheel_filename

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "packaging" / "offline-bundle.sh"
HUB_ONLY = ("fastapi", "asyncpg", "confluent_kafka", "uvicorn", "redis")

# Any attempt to reach an index or proxy fails fast: port 9 (discard) on loopback is closed.
NO_NETWORK = {
    "PIP_INDEX_URL": "http://127.0.0.1:9/simple",
    "PIP_EXTRA_INDEX_URL": "",
    "PIP_FIND_LINKS": "",
    "PIP_CONFIG_FILE": os.devnull,
    "HTTP_PROXY": "http://127.0.0.1:9",
    "HTTPS_PROXY": "http://127.0.0.1:9",
    "http_proxy": "http://127.0.0.1:9",
    "https_proxy": "http://127.0.0.1:9",
    "NO_PROXY": "",
    "no_proxy": "",
}


def _build(out: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(SCRIPT), "--python", sys.executable, "--out", str(out)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        check=False,
        timeout=280,
    )


@pytest.fixture(scope="module")
def tarball(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bundle, built with the package index allowed (cached after the first time)."""
    out = tmp_path_factory.mktemp("dist")
    result = _build(out)
    assert result.returncode == 0, result.stdout + result.stderr
    (path,) = out.glob("millstream-agent-*.tar.gz")
    return path


@pytest.fixture(scope="module")
def bundle(tarball: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The unpacked bundle folder, as a technician has it on the line PC."""
    dest = tmp_path_factory.mktemp("linepc")
    with tarfile.open(tarball) as tar:
        tar.extractall(dest, filter="data")
    (folder,) = dest.iterdir()
    return folder


def _install(bundle: Path, prefix: Path, **extra: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **NO_NETWORK, **extra}
    return subprocess.run(
        ["sh", str(bundle / "install.sh"), str(prefix)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=280,
    )


def test_bundle_holds_the_agent_and_nothing_of_the_hub(tarball: Path, bundle: Path) -> None:
    py = f"py{sys.version_info[0]}.{sys.version_info[1]}"
    assert py in tarball.name
    names = {p.name for p in (bundle / "wheels").iterdir()}
    assert any(n.startswith("millstream-0.1.0-") for n in names)
    for needed in ("pymodbus-", "asyncua-", "paho_mqtt-", "pydantic_core-", "pip-"):
        assert any(n.startswith(needed) for n in names), needed
    for hub_only in HUB_ONLY:
        assert not any(n.lower().startswith(hub_only + "-") for n in names), hub_only
    for extra in ("install.sh", "SHA256SUMS", "millstream-agent.service", "agent.example.yaml"):
        assert (bundle / extra).is_file(), extra


def test_bundle_ships_exactly_the_locked_versions(bundle: Path) -> None:
    """Every wheel is the version requirements/agent.txt pins: what CI tested reaches a line PC."""
    lock = (ROOT / "requirements" / "agent.txt").read_text()
    pins = {
        canonicalize_name(m[1]): m[2]
        for m in re.finditer(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^ ;\\]+)", lock, re.M)
    }
    for wheel in (bundle / "wheels").iterdir():
        name, version = parse_wheel_filename(wheel.name)[:2]
        if name == "millstream":
            continue
        assert pins.get(name) == str(version), f"{wheel.name} is not the locked version"


def test_installs_and_runs_with_no_network(bundle: Path, tmp_path: Path) -> None:
    prefix = tmp_path / "opt-millstream"
    result = _install(bundle, prefix)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "[3/4] installing millstream[agent]" in result.stdout

    version = subprocess.run(
        [str(prefix / "bin" / "edge-agent"), "--version"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert version.stdout.strip() == "edge-agent 0.1.0"

    probe = (
        "import importlib.util, json; "
        f"print(json.dumps([m for m in {list(HUB_ONLY)!r} if importlib.util.find_spec(m)]))"
    )
    found = subprocess.run(
        [str(prefix / "bin" / "python"), "-c", probe], capture_output=True, text=True, check=True
    )
    assert found.stdout.strip() == "[]"

    # Device profiles travel inside the wheel: the installed agent validates the simulated plant.
    validate = subprocess.run(
        [str(prefix / "bin" / "edge-agent"), "validate", str(ROOT / "examples" / "plant.yaml")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert validate.returncode == 0, validate.stdout + validate.stderr

    # The unit template travels inside the wheel, and the bundle's unit is that template rendered.
    unit = subprocess.run(
        [str(prefix / "bin" / "edge-agent"), "service", "show"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert unit.stdout == (bundle / "millstream-agent.service").read_text()


def test_refuses_a_damaged_bundle(bundle: Path, tmp_path: Path) -> None:
    copy = tmp_path / "bundle"
    subprocess.run(["cp", "-a", str(bundle), str(copy)], check=True)
    wheel = next((copy / "wheels").glob("pymodbus-*.whl"))
    wheel.write_bytes(wheel.read_bytes()[:-10])
    result = _install(copy, tmp_path / "venv")
    assert result.returncode != 0
    assert "damaged" in result.stderr
    assert not (tmp_path / "venv").exists()


def test_refuses_another_python_version(bundle: Path, tmp_path: Path) -> None:
    fake = tmp_path / "python3.99"
    fake.write_text("#!/bin/sh\necho 3.99\n")
    fake.chmod(0o755)
    result = _install(bundle, tmp_path / "venv", PYTHON=str(fake))
    assert result.returncode != 0
    assert f"wheels for Python {sys.version_info[0]}.{sys.version_info[1]}" in result.stderr
    assert "3.99" in result.stderr


def test_warm_cache_builds_with_no_network(tarball: Path, tmp_path: Path) -> None:
    # The fixture filled the cache; now the index is unreachable and the build must not need it.
    result = _build(tmp_path, env={**os.environ, **NO_NETWORK})
    assert result.returncode == 0, result.stdout + result.stderr
    assert "fetching from the package index" not in result.stdout
    assert len(list(tmp_path.glob("millstream-agent-*.tar.gz"))) == 1
