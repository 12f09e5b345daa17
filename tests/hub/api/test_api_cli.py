"""Operator-facing commands: `serve` refuses a missing/weak JWT secret; `users` manages users."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest

from hub.auth import AuthService, AuthStore, NotAuthenticated
from hub.config import ApiConfig
from hub.sql import open_database

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


def test_api_keys_are_listed_and_revoked(tmp_path: Path) -> None:
    config = tmp_path / "hub.yaml"
    db = tmp_path / "hub.db"
    config.write_text(f"storage: 'sqlite:///{db}'\n")
    assert _run("migrate", "-c", str(config)).returncode == 0
    # The original form (`api-key NAME --role R`) and `api-key add` both create a key.
    key = _run("users", "api-key", "historian", "--role", "viewer", "-c", str(config))
    assert key.returncode == 0, key.stderr
    secret = key.stdout.strip()
    added = _run("users", "api-key", "add", "scada", "--role", "operator", "-c", str(config))
    assert added.returncode == 0, added.stderr
    listed = _run("users", "api-key", "list", "-c", str(config)).stdout
    rows = [line.split("\t")[:3] for line in listed.splitlines()]
    assert rows == [["historian", "viewer", "active"], ["scada", "operator", "active"]]
    assert secret.split("_")[-1] not in listed  # never shown again
    assert asyncio.run(_principal(db, secret)) == "key:historian"

    revoked = _run("users", "api-key", "revoke", "historian", "-c", str(config))
    assert revoked.returncode == 0, revoked.stderr
    listed = _run("users", "api-key", "list", "-c", str(config)).stdout
    assert listed.splitlines()[0].split("\t")[:3] == ["historian", "viewer", "revoked"]
    assert asyncio.run(_principal(db, secret)) is None  # refused from now on
    unknown = _run("users", "api-key", "revoke", "nope", "-c", str(config))
    assert unknown.returncode == 1
    assert "users api-key list" in unknown.stderr  # the next step


async def _principal(db: Path, credential: str) -> str | None:
    """Whom the hub's auth takes `credential` for, or None when it refuses it."""
    async with open_database(f"sqlite:///{db}") as database:
        auth = AuthService(AuthStore(database), b"k" * 16 + b"0123456789abcdef", ApiConfig())
        try:
            return (await auth.authenticate(credential)).subject
        except NotAuthenticated:
            return None
