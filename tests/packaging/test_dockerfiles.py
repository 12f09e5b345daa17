"""packaging/docker/*.Dockerfile: multi-stage, non-root, one extra each, a complete build context.

There is no Docker engine in CI, so the images are not built here (docs/deploy.md says how). What
can be checked without one is: the stages and user, that the build context `.dockerignore` leaves
holds everything the wheel is made of, and that a wheel built from exactly the files the
Dockerfiles copy is complete (device profiles included).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "packaging" / "docker"
IMAGES = {"agent.Dockerfile": "agent", "hub.Dockerfile": "hub"}


def _stages(text: str) -> list[list[str]]:
    """Instructions per stage, continuation lines joined."""
    joined = re.sub(r"\\\n", " ", text)
    stages: list[list[str]] = []
    for raw in joined.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.upper().startswith("FROM "):
            stages.append([])
        if stages:
            stages[-1].append(line)
    return stages


def _copied(text: str) -> list[str]:
    sources = []
    for stage in _stages(text):
        for line in stage:
            if line.upper().startswith("COPY ") and "--from" not in line:
                sources += line.split()[1:-1]
    return [s.rstrip("/") for s in sources]


def _wheel_sources() -> list[str]:
    hatch = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["hatch"]["build"]
    wheel = hatch["targets"]["wheel"]
    return [*wheel["packages"], *wheel.get("force-include", {})]


@pytest.mark.parametrize(("dockerfile", "extra"), IMAGES.items())
def test_multi_stage_non_root_one_extra(dockerfile: str, extra: str) -> None:
    text = (DOCKER / dockerfile).read_text()
    stages = _stages(text)
    assert len(stages) >= 2, "build and runtime stages"
    runtime = stages[-1]
    users = [line.split()[1] for line in runtime if line.upper().startswith("USER ")]
    assert users, "the runtime stage must switch to an unprivileged user"
    assert users[-1] not in {"root", "0"}
    installs = [line for line in runtime if "pip install" in line]
    assert len(installs) == 1
    assert f'"millstream[{extra}]"' in installs[0]
    assert "--no-index" in installs[0]
    # Nothing from the build stage is copied in as a layer: the wheels are bind-mounted for one RUN.
    assert not any(line.upper().startswith("COPY --FROM") for line in runtime)
    other = "hub" if extra == "agent" else "agent"
    assert f"[{other}]" not in text


@pytest.mark.parametrize("dockerfile", IMAGES)
def test_build_context_holds_what_the_wheel_is_made_of(dockerfile: str) -> None:
    copied = set(_copied((DOCKER / dockerfile).read_text()))
    assert set(_wheel_sources()) <= copied, "COPY every package and force-included folder"
    allowed = {
        line[1:].rstrip("/")
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.startswith("!")
    }
    for source in copied:
        assert (ROOT / source).exists(), source
        assert any(source == a or source.startswith(a + "/") for a in allowed), (
            f"{source} is excluded by .dockerignore"
        )


@pytest.mark.parametrize(("dockerfile", "extra"), IMAGES.items())
def test_build_installs_only_the_lock(dockerfile: str, extra: str) -> None:
    """The image gets the versions CI tested: its lock, hash-checked, and nothing resolved."""
    build = " ".join(_stages((DOCKER / dockerfile).read_text())[0])
    assert f"--require-hashes --no-deps -r requirements/{extra}.txt" in build
    assert "--require-hashes --no-deps -r requirements/build.txt" in build
    assert f'".[{extra}]"' not in build, "resolving the extra would pick whatever is newest"
    assert "--no-build-isolation" in build


def test_compose_builds_these_dockerfiles() -> None:
    compose = (ROOT / "docker-compose.yml").read_text()
    for dockerfile in IMAGES:
        assert f"dockerfile: packaging/docker/{dockerfile}" in compose


def test_wheel_from_the_copied_files_is_complete(tmp_path: Path) -> None:
    context = tmp_path / "context"
    for source in _copied((DOCKER / "agent.Dockerfile").read_text()):
        src = ROOT / source
        if src.is_dir():
            shutil.copytree(src, context / source, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            (context / source).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, context / source)
    cache = Path(
        os.environ.get("MILLSTREAM_WHEEL_CACHE")
        or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
        / "millstream"
        / "wheels"
    )
    out = tmp_path / "wheels"
    pip = [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps"]
    result = subprocess.run(
        [*pip, "--find-links", str(cache), "--wheel-dir", str(out), str(context)],
        capture_output=True,
        text=True,
        check=False,
        timeout=240,
    )
    assert result.returncode == 0, result.stderr
    (wheel,) = out.glob("millstream-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    for package in ("wire/__init__.py", "edge_agent/cli/__init__.py", "hub/cli/__init__.py"):
        assert package in names
    assert "edge_agent/device_profiles/sim-cnc-mill.yaml" in names
    # The dashboard's built assets are committed under hub/ and must reach the hub image.
    for asset in (ROOT / "hub" / "dashboard" / "static").rglob("*"):
        if asset.is_file():
            assert asset.relative_to(ROOT).as_posix() in names
