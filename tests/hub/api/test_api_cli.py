"""Operator-facing commands: `serve` refuses a missing/weak JWT secret; `users` manages users."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

HUB = str(Path(sys.executable).with_name("millstream-hub"))


def _run(
    *args: str, stdin: str = "", env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MILLSTREAM_")}
    return subprocess.run(
        [HUB, *args],
        check=False,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        env=clean | (env or {}),
    )


@pytest.mark.parametrize(
    ("env", "message"),
    [({}, "no JWT signing secret configured"), ({"MILLSTREAM_JWT_SECRET": "short"}, "at least 32")],
)
def test_serve_refuses_a_missing_or_weak_secret(
    tmp_path: Path, env: dict[str, str], message: str
) -> None:
    config = tmp_path / "hub.yaml"
    config.write_text(f"storage: 'sqlite:///{tmp_path / 'hub.db'}'\n")
    done = _run("serve", "--config", str(config), env=env)
    assert done.returncode == 1
    assert message in done.stderr
    assert "MILLSTREAM_JWT_SECRET" in done.stderr  # the hint says what to set


def test_users_commands(tmp_path: Path) -> None:
    config = tmp_path / "hub.yaml"
    config.write_text(f"storage: 'sqlite:///{tmp_path / 'hub.db'}'\n")
    assert _run("migrate", "-c", str(config)).returncode == 0
    added = _run(
        "users",
        "add",
        "ann",
        "--role",
        "operator",
        "--password-stdin",
        "-c",
        str(config),
        stdin="long enough pw\n",
    )
    assert added.returncode == 0, added.stderr
    again = _run(
        "users",
        "add",
        "ann",
        "--role",
        "admin",
        "--password-stdin",
        "-c",
        str(config),
        stdin="long enough pw\n",
    )
    assert again.returncode == 1
    assert "already exists" in again.stderr
    short = _run(
        "users",
        "add",
        "bob",
        "--role",
        "viewer",
        "--password-stdin",
        "-c",
        str(config),
        stdin="short\n",
    )
    assert short.returncode == 2
    assert _run("users", "disable", "ann", "-c", str(config)).returncode == 0
    listed = _run("users", "list", "-c", str(config))
    assert listed.stdout.splitlines() == ["ann\toperator\tdisabled"]
    key = _run("users", "api-key", "historian", "--role", "viewer", "-c", str(config))
    assert key.stdout.startswith("msk_")
    assert (
        _run(
            "users",
            "passwd",
            "nobody",
            "--password-stdin",
            "-c",
            str(config),
            stdin="long enough pw\n",
        ).returncode
        == 1
    )
