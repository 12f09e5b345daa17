"""One-time enrolment tokens: an agent fetches its broker credentials and site settings from the
hub with a token, so a technician never copies a password (docs/deploy.md "Enrol an agent").

`millstream-hub agents add … --enrol` (or `agents enrol NAME`) issues a token; `edge-agent init
--hub URL --token TOKEN` redeems it through `POST /api/v1/enrol`. Redeeming sets a new password
on the broker and hands it over in that one answer: the password never exists anywhere else,
and the token works once. The hub keeps only the token's SHA-256.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass

from hub.devices.identities import Identity
from hub.devices.service import BrokerIdentities, IdentityError
from hub.errors import MillstreamHubError
from hub.sql import Database

__all__ = ["DEFAULT_VALID_MS", "Enrolled", "EnrolmentError", "Enrolments"]

TOKEN_BYTES = 24  # 192 bits: guessing one is hopeless, and redeeming is rate-limited besides
TOKEN_PREFIX = "mse_"  # noqa: S105 -- a prefix, not a secret; recognisable in a chat or a ticket as something secret
DEFAULT_VALID_MS = 24 * 3600 * 1000


class EnrolmentError(MillstreamHubError):
    """A token that is unknown, used, expired, or names an identity no longer there."""


@dataclass(frozen=True, slots=True)
class Enrolled:
    """What a redeemed token delivers to the agent."""

    identity: Identity
    broker_url: str
    password: str


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class Enrolments:
    """Issue and redeem tokens (the `enrolment_tokens` table)."""

    def __init__(self, db: Database, now_ms: Callable[[], int]) -> None:
        self._db = db
        self._now = now_ms

    async def issue(
        self, identity: Identity, broker_url: str, who: str, valid_ms: int = DEFAULT_VALID_MS
    ) -> str:
        """A new token for an agent identity; any earlier unused token of it stops working."""
        if identity.kind != "agent":
            raise EnrolmentError(
                f"{identity.name!r} is a device: enrolment tokens are for agents "
                "(`edge-agent init --token`); give a device its password"
            )
        now = self._now()
        token = TOKEN_PREFIX + secrets.token_urlsafe(TOKEN_BYTES)
        # One live token per agent: a second one issued (the first was lost in a chat?) is
        # the only one that works.
        await self._db.execute(
            "DELETE FROM enrolment_tokens WHERE name = $1 AND used_at IS NULL", identity.name
        )
        await self._db.execute(
            "INSERT INTO enrolment_tokens (digest, name, broker_url, created_at, created_by,"
            " expires_at) VALUES ($1, $2, $3, $4, $5, $6)",
            _digest(token),
            identity.name,
            broker_url,
            now,
            who,
            now + valid_ms,
        )
        return token

    async def check(self, token: str) -> None:
        """Raise EnrolmentError (saying which) unless `token` could be redeemed now: the cheap
        refusal, before any broker session is opened."""
        now = self._now()
        rows = await self._db.fetch(
            "SELECT 1 FROM enrolment_tokens WHERE digest = $1 AND used_at IS NULL"
            " AND expires_at > $2",
            _digest(token),
            now,
        )
        if not rows:
            raise EnrolmentError(await self._why_not(_digest(token), now))

    async def redeem(self, token: str, identities: BrokerIdentities, by: str) -> Enrolled:
        """Use the token once: a new broker password for its agent, handed over here only."""
        now = self._now()
        digest = _digest(token)
        # Claimed in one statement, so two redeemers racing get one winner.
        rows = await self._db.fetch(
            "UPDATE enrolment_tokens SET used_at = $2, used_by = $3"
            " WHERE digest = $1 AND used_at IS NULL AND expires_at > $2"
            " RETURNING name, broker_url",
            digest,
            now,
            by,
        )
        if not rows:
            raise EnrolmentError(await self._why_not(digest, now))
        name, broker_url = rows[0]["name"], rows[0]["broker_url"]
        try:
            identity = await identities.get(name)
            password = await identities.rotate(name)
        except IdentityError as exc:
            raise EnrolmentError(f"the agent {name!r} of this token is gone: {exc}") from exc
        except BaseException:
            # The broker could not set the password: the token was not spent on anything,
            # so it works again (the technician retries when the broker is back).
            await self._db.execute(
                "UPDATE enrolment_tokens SET used_at = NULL, used_by = NULL WHERE digest = $1",
                digest,
            )
            raise
        return Enrolled(identity, broker_url, password)

    async def _why_not(self, digest: str, now: int) -> str:
        rows = await self._db.fetch(
            "SELECT used_at, expires_at FROM enrolment_tokens WHERE digest = $1", digest
        )
        ask = "ask the hub's admin for a new one (`millstream-hub agents enrol AGENT`)"
        if not rows:
            return f"unknown enrolment token: {ask}"
        if rows[0]["used_at"] is not None:
            return f"this enrolment token was used already: {ask}"
        return f"this enrolment token expired: {ask}"
