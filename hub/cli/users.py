"""`millstream-hub users add|passwd|disable|enable|list|api-key [add|list|revoke]` (all take
`--config hub.yaml`)."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar

import typer
from typer.core import TyperGroup

from hub.auth import AuthStore, Role, hash_password, make_api_key
from hub.cli.migrate import ConfigOption
from hub.config import load_config
from hub.errors import ConfigError, MillstreamHubError
from hub.sql import open_database

__all__ = ["register"]

_T = TypeVar("_T")
MIN_PASSWORD = 8

users_app = typer.Typer(name="users", help="Manage API users and API keys.", no_args_is_help=True)

RoleOption = Annotated[
    Role, typer.Option("--role", "-r", help="viewer, operator or admin.", case_sensitive=False)
]
StdinOption = Annotated[
    bool, typer.Option("--password-stdin", help="Read the password from the first stdin line.")
]


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _run(config: ConfigOption, op: Callable[[AuthStore], Awaitable[_T]]) -> _T:
    async def go(url: str) -> _T:
        async with open_database(url, max_connections=1) as db:
            return await op(AuthStore(db))

    try:
        cfg = load_config(config)
        return asyncio.run(go(cfg.storage))
    except ConfigError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from exc
    except MillstreamHubError as exc:
        typer.echo(f"failed: {exc} (has `millstream-hub migrate` been run?)", err=True)
        raise typer.Exit(1) from exc


def _password(from_stdin: bool) -> str:
    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    if len(password) < MIN_PASSWORD:
        typer.echo(f"password must be at least {MIN_PASSWORD} characters", err=True)
        raise typer.Exit(2)
    return password


@users_app.command("add")
def add(
    name: str, role: RoleOption, password_stdin: StdinOption = False, config: ConfigOption = None
) -> None:
    """Create a user with a role; asks for the password twice unless --password-stdin."""
    hashed = hash_password(_password(password_stdin))
    if not _run(config, lambda s: s.add_user(name, role, hashed, _now_ms())):
        typer.echo(f"user {name!r} already exists (use `users passwd` to change it)", err=True)
        raise typer.Exit(1)
    typer.echo(f"added {name} ({role.value})")


@users_app.command("passwd")
def passwd(name: str, password_stdin: StdinOption = False, config: ConfigOption = None) -> None:
    """Set a user's password; their sessions end."""
    hashed = hash_password(_password(password_stdin))
    if not _run(config, lambda s: s.set_password(name, hashed, _now_ms())):
        typer.echo(f"no user {name!r}", err=True)
        raise typer.Exit(1)
    typer.echo(f"password of {name} changed; their sessions are signed out")


@users_app.command("disable")
def disable(name: str, config: ConfigOption = None) -> None:
    """Disable a user: login refused, refresh tokens revoked (access tokens expire soon)."""
    if not _run(config, lambda s: s.set_disabled(name, True, _now_ms())):
        typer.echo(f"no user {name!r}", err=True)
        raise typer.Exit(1)
    typer.echo(f"disabled {name}")


@users_app.command("enable")
def enable(name: str, config: ConfigOption = None) -> None:
    """Re-enable a disabled user."""
    if not _run(config, lambda s: s.set_disabled(name, False, _now_ms())):
        typer.echo(f"no user {name!r}", err=True)
        raise typer.Exit(1)
    typer.echo(f"enabled {name}")


@users_app.command("list")
def list_users(config: ConfigOption = None) -> None:
    """List users with role and state."""
    for user in _run(config, lambda s: s.list_users()):
        state = "disabled" if user.disabled else "active"
        typer.echo(f"{user.name}\t{user.role.value}\t{state}")


class _AddByDefault(TyperGroup):
    """`users api-key NAME --role R` (the original form) means `users api-key add NAME …`."""

    # ctx: Any, since typer carries its own copy of click's Context (typer._click).
    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            args = ["add", *args]
        return super().parse_args(ctx, args)


api_key_app = typer.Typer(
    name="api-key",
    cls=_AddByDefault,
    help="API keys for machine clients: add (the default), list, revoke.",
    no_args_is_help=True,
)


@api_key_app.command("add")
def api_key_add(name: str, role: RoleOption, config: ConfigOption = None) -> None:
    """Create an API key for a machine client; the key is printed once and stored hashed."""
    key_id, key, hashed = make_api_key()
    if not _run(config, lambda s: s.add_api_key(key_id, name, role, hashed, _now_ms())):
        typer.echo(
            f"an API key named {name!r} already exists (`users api-key list` shows them)",
            err=True,
        )
        raise typer.Exit(1)
    typer.echo(key)


@api_key_app.command("list")
def api_key_list(config: ConfigOption = None) -> None:
    """List API keys: name, role, active or revoked, created (UTC). Secrets are never shown."""
    for key, created in _run(config, lambda s: s.list_api_keys()):
        state = "revoked" if key.disabled else "active"
        when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(created / 1000))
        typer.echo(f"{key.name}\t{key.role.value}\t{state}\t{when}")


@api_key_app.command("revoke")
def api_key_revoke(name: str, config: ConfigOption = None) -> None:
    """Revoke an API key at once: every request with it is refused from now on."""
    if not _run(config, lambda s: s.revoke_api_key(name)):
        typer.echo(f"no API key named {name!r} (`users api-key list` shows them)", err=True)
        raise typer.Exit(1)
    typer.echo(f"revoked API key {name}")


users_app.add_typer(api_key_app)


def register(app: typer.Typer) -> None:
    """Add the `users` command group."""
    app.add_typer(users_app)
