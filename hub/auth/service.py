"""Login, refresh rotation and credential checks: the auth store plus tokens plus a clock."""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

from hub.auth.errors import NotAuthenticated
from hub.auth.passwords import DUMMY_HASH, hash_password, needs_rehash, verify_password
from hub.auth.store import AuthStore, RefreshOutcome, UserRow
from hub.auth.tokens import (
    Principal,
    hashes_equal,
    issue_access_token,
    new_secret,
    parse_api_key,
    read_access_token,
    secret_hash,
)
from hub.config import ApiConfig

__all__ = ["USER_CHECK_S", "AuthService", "TokenPair"]

# How old the user state behind an access token may be: a user disabled or demoted (from the
# CLI, another hub instance or the API) loses their rights within this, not at token expiry.
USER_CHECK_S = 2.0
_MAX_CACHED_USERS = 10_000

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class TokenPair:
    """What login and refresh return."""

    access_token: str
    refresh_token: str
    expires_in: int
    token_type: str = "bearer"  # noqa: S105 -- the OAuth 2 token type, not a secret


class AuthService:
    """Issues and checks credentials; the clock is injected so tests can move it."""

    def __init__(
        self,
        store: AuthStore,
        secret: bytes,
        config: ApiConfig,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self._secret = secret
        self._config = config
        self._clock = clock
        # Users as last read (monotonic time, row): a token is checked against its user's
        # current state, at most USER_CHECK_S old, without a query on every request.
        self._users: dict[str, tuple[float, UserRow | None]] = {}

    def _now_s(self) -> int:
        return int(self._clock())

    async def _current_user(self, name: str) -> UserRow | None:
        now = time.monotonic()
        seen = self._users.get(name)
        if seen is not None and now - seen[0] < USER_CHECK_S:
            return seen[1]
        user = await self.store.get_user(name)
        if len(self._users) >= _MAX_CACHED_USERS:
            self._users.clear()  # bounded: forged names must not grow memory
        self._users[name] = (now, user)
        return user

    async def _issue(self, user: UserRow, family: str) -> TokenPair:
        now = self._now_s()
        principal = Principal(user.name, user.role)
        access = issue_access_token(self._secret, principal, now, self._config.access_token_ttl_s)
        refresh = new_secret()
        await self.store.add_refresh(
            secret_hash(refresh),
            family,
            user.id,
            now * 1000,
            (now + self._config.refresh_token_ttl_s) * 1000,
        )
        return TokenPair(access, refresh, self._config.access_token_ttl_s)

    async def login(self, name: str, password: str) -> TokenPair:
        """A new session for valid credentials; `NotAuthenticated` otherwise (same message)."""
        user = await self.store.get_user(name)
        # argon2 takes tens of ms of CPU: off the event loop, and run even for unknown users.
        stored = user.password_hash if user is not None else DUMMY_HASH
        ok = await asyncio.to_thread(verify_password, stored, password)
        if user is None or not ok or user.disabled:
            raise NotAuthenticated("invalid user name or password")
        if needs_rehash(user.password_hash):
            new_hash = await asyncio.to_thread(hash_password, password)
            await self.store.set_password(user.name, new_hash, self._now_s() * 1000)
        return await self._issue(user, secrets.token_hex(8))

    async def refresh(self, token: str) -> TokenPair:
        """Rotate a refresh token: the old one stops working; reusing it revokes the family."""
        outcome, user_id, family = await self.store.use_refresh(
            secret_hash(token), self._now_s() * 1000
        )
        if outcome is RefreshOutcome.REUSED:
            log.warning("refresh token reused; session family %s revoked", family)
        if outcome is not RefreshOutcome.ROTATED:
            raise NotAuthenticated("refresh token is invalid, expired or already used")
        user = await self.store.get_user_by_id(user_id)
        if user is None or user.disabled:
            raise NotAuthenticated("user is disabled")
        return await self._issue(user, family)

    async def authenticate(self, credential: str) -> Principal:
        """The principal behind an access token or an API key; `NotAuthenticated` otherwise."""
        parsed = parse_api_key(credential)
        if parsed is None:
            principal = read_access_token(self._secret, credential, self._now_s())
            # A token says who its user was when it was issued; what they may do is what they
            # may do now: disabling refuses it, a new role applies (within USER_CHECK_S).
            user = await self._current_user(principal.subject)
            if user is None or user.disabled:
                raise NotAuthenticated("user disabled or removed")
            if user.role != principal.role:
                return Principal(principal.subject, user.role, principal.kind)
            return principal
        key = await self.store.get_api_key(parsed[0])
        if key is None or key.disabled or not hashes_equal(key.secret_hash, secret_hash(parsed[1])):
            raise NotAuthenticated("invalid API key")
        return Principal(f"key:{key.name}", key.role, "api_key")
