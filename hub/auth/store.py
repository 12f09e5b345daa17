"""Users, refresh tokens and API keys in the hub's database (migration 0003_auth)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any

from hub.auth.roles import Role
from hub.sql import Database

__all__ = ["ApiKeyRow", "AuthStore", "RefreshOutcome", "UserRow"]


@dataclass(frozen=True, slots=True)
class UserRow:
    """One API user (the hash never leaves the auth package)."""

    id: int
    name: str
    role: Role
    password_hash: str
    disabled: bool


@dataclass(frozen=True, slots=True)
class ApiKeyRow:
    """One machine-to-machine key."""

    id: str
    name: str
    role: Role
    secret_hash: str
    disabled: bool


class RefreshOutcome(Enum):
    """What presenting a refresh token did."""

    ROTATED = "rotated"  # valid and unused: now used; issue the next one
    REUSED = "reused"  # already used: a copy was stolen; the family is now revoked
    INVALID = "invalid"  # unknown, expired or revoked


def _user(row: dict[str, Any]) -> UserRow:
    return UserRow(
        int(row["id"]),
        str(row["name"]),
        Role(str(row["role"])),
        str(row["password_hash"]),
        bool(row["disabled"]),
    )


class AuthStore:
    """Auth tables over a `Database` (PostgreSQL or SQLite; same statements)."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def add_user(self, name: str, role: Role, password_hash: str, now_ms: int) -> bool:
        """Create a user; False when the name is taken."""
        rows = await self._db.fetch(
            "INSERT INTO users (name, role, password_hash, created_at, updated_at)"
            " VALUES ($1, $2, $3, $4, $4) ON CONFLICT (name) DO NOTHING RETURNING id",
            name,
            role.value,
            password_hash,
            now_ms,
        )
        return bool(rows)

    async def get_user(self, name: str) -> UserRow | None:
        """The user called `name`, if any."""
        rows = await self._db.fetch(
            "SELECT id, name, role, password_hash, disabled FROM users WHERE name = $1", name
        )
        return _user(rows[0]) if rows else None

    async def get_user_by_id(self, user_id: int) -> UserRow | None:
        """The user with this id, if any."""
        rows = await self._db.fetch(
            "SELECT id, name, role, password_hash, disabled FROM users WHERE id = $1", user_id
        )
        return _user(rows[0]) if rows else None

    async def list_users(self) -> list[UserRow]:
        """Every user, by name."""
        rows = await self._db.fetch(
            "SELECT id, name, role, password_hash, disabled FROM users ORDER BY name"
        )
        return [_user(r) for r in rows]

    async def set_password(self, name: str, password_hash: str, now_ms: int) -> bool:
        """Replace a user's password and end every session of theirs; False if no such user."""
        rows = await self._db.fetch(
            "UPDATE users SET password_hash = $2, updated_at = $3 WHERE name = $1 RETURNING id",
            name,
            password_hash,
            now_ms,
        )
        if rows:
            await self.revoke_user_tokens(int(rows[0]["id"]))
        return bool(rows)

    async def set_disabled(self, name: str, disabled: bool, now_ms: int) -> bool:
        """Disable (or re-enable) a user; disabling ends their sessions. False if no such user."""
        rows = await self._db.fetch(
            "UPDATE users SET disabled = $2, updated_at = $3 WHERE name = $1 RETURNING id",
            name,
            disabled,
            now_ms,
        )
        if rows and disabled:
            await self.revoke_user_tokens(int(rows[0]["id"]))
        return bool(rows)

    async def revoke_user_tokens(self, user_id: int) -> None:
        """Revoke every refresh token of a user."""
        await self._db.execute(
            "UPDATE refresh_tokens SET revoked = TRUE WHERE user_id = $1", user_id
        )

    async def add_refresh(
        self, token_hash: str, family: str, user_id: int, now_ms: int, expires_ms: int
    ) -> None:
        """Record an issued refresh token."""
        await self._db.execute(
            "INSERT INTO refresh_tokens (token_hash, family, user_id, issued_at, expires_at)"
            " VALUES ($1, $2, $3, $4, $5)",
            token_hash,
            family,
            user_id,
            now_ms,
            expires_ms,
        )

    async def use_refresh(self, token_hash: str, now_ms: int) -> tuple[RefreshOutcome, int, str]:
        """Mark a refresh token used: (outcome, user id, family); reuse revokes the family."""
        # One statement, so two concurrent uses of the same token cannot both succeed.
        rows = await self._db.fetch(
            "UPDATE refresh_tokens SET used_at = $2 WHERE token_hash = $1 AND used_at IS NULL"
            " AND revoked = FALSE AND expires_at > $2 RETURNING user_id, family",
            token_hash,
            now_ms,
        )
        if rows:
            return RefreshOutcome.ROTATED, int(rows[0]["user_id"]), str(rows[0]["family"])
        seen = await self._db.fetch(
            "SELECT user_id, family, used_at FROM refresh_tokens WHERE token_hash = $1",
            token_hash,
        )
        if seen and seen[0]["used_at"] is not None:
            family = str(seen[0]["family"])
            await self._db.execute(
                "UPDATE refresh_tokens SET revoked = TRUE WHERE family = $1", family
            )
            return RefreshOutcome.REUSED, int(seen[0]["user_id"]), family
        return RefreshOutcome.INVALID, 0, ""

    async def purge_refresh(self, now_ms: int) -> None:
        """Forget refresh tokens past their expiry."""
        await self._db.execute("DELETE FROM refresh_tokens WHERE expires_at <= $1", now_ms)

    async def add_api_key(
        self, key_id: str, name: str, role: Role, secret_hash: str, now_ms: int
    ) -> bool:
        """Store a new API key (its secret only as a hash); False when the name is taken."""
        rows = await self._db.fetch(
            "INSERT INTO api_keys (id, name, role, secret_hash, created_at)"
            " VALUES ($1, $2, $3, $4, $5) ON CONFLICT (name) DO NOTHING RETURNING id",
            key_id,
            name,
            role.value,
            secret_hash,
            now_ms,
        )
        return bool(rows)

    async def list_api_keys(self) -> list[tuple[ApiKeyRow, int]]:
        """Every API key with its creation time (epoch ms), oldest first."""
        rows = await self._db.fetch(
            "SELECT id, name, role, secret_hash, disabled, created_at FROM api_keys"
            " ORDER BY created_at, name"
        )
        return [
            (
                ApiKeyRow(
                    str(r["id"]),
                    str(r["name"]),
                    Role(r["role"]),
                    str(r["secret_hash"]),
                    bool(r["disabled"]),
                ),
                int(r["created_at"]),
            )
            for r in rows
        ]

    async def revoke_api_key(self, name: str) -> bool:
        """Refuse the key named `name` from now on (the row stays, for the record)."""
        rows = await self._db.fetch(
            "UPDATE api_keys SET disabled = true WHERE name = $1 RETURNING id", name
        )
        return bool(rows)

    async def get_api_key(self, key_id: str) -> ApiKeyRow | None:
        """The API key with this id, if any."""
        rows = await self._db.fetch(
            "SELECT id, name, role, secret_hash, disabled FROM api_keys WHERE id = $1", key_id
        )
        if not rows:
            return None
        r = rows[0]
        return ApiKeyRow(
            str(r["id"]),
            str(r["name"]),
            Role(r["role"]),
            str(r["secret_hash"]),
            bool(r["disabled"]),
        )
