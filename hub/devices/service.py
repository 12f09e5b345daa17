"""Add, disable, enable, rotate and remove broker identities: the broker's dynamic security and the
hub's `broker_identities` table changed together, broker first (a row never claims an identity the
broker does not have; a failed broker step leaves the table as it was)."""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from typing import Any

from hub.devices.dynsec import Dynsec
from hub.devices.identities import HUB_ROLE, Identity, acls, hub_acls, role_name
from hub.errors import MillstreamHubError
from hub.sql import Database

__all__ = ["BrokerIdentities", "IdentityError", "identity_of", "new_password"]

# What a device may be told once; 32 characters of a URL-safe alphabet (192 bits).
PASSWORD_BYTES = 24


class IdentityError(MillstreamHubError):
    """A request about identities that cannot be done as asked (exists, unknown, …)."""


def new_password() -> str:
    """A fresh broker password, shown once and stored only (hashed) by the broker."""
    return secrets.token_urlsafe(PASSWORD_BYTES)


def identity_of(row: dict[str, Any]) -> Identity:
    """An identity as its `broker_identities` row has it."""
    return Identity(
        name=row["name"],
        kind=row["kind"],
        site=row["site"],
        line=row["line"],
        machines=tuple(json.loads(row["machines"])),
        src=row["src"],
        disabled=bool(row["disabled"]),
        created_at=row["created_at"],
        created_by=row["created_by"],
        auth=row["auth"],
    )


class BrokerIdentities:
    """One admin session: the hub database and the broker's dynamic security."""

    def __init__(self, db: Database, dynsec: Dynsec | None, now_ms: Callable[[], int]) -> None:
        """`dynsec` None: reads only (list, get)."""
        self._db = db
        self._dynsec = dynsec
        self._now = now_ms

    @property
    def db(self) -> Database:
        """The hub database this session changes (enrolment tokens live there too)."""
        return self._db

    def now_ms(self) -> int:
        """The clock identities are stamped with."""
        return self._now()

    def _broker(self) -> Dynsec:
        if self._dynsec is None:
            raise IdentityError("changing identities needs the broker (a Dynsec session)")
        return self._dynsec

    async def setup(self, hub_user: str) -> None:
        """Give the hub's own broker user the role it needs (again: harmless)."""
        await self._broker().run(
            [{"command": "createRole", "rolename": HUB_ROLE, "acls": hub_acls()}],
            tolerate=("already exists",),
        )
        # The broker disconnects a client whose roles change (to apply them), this very
        # session included, and Mosquitto 2.0 then answers "Internal error" although the role
        # was added: what counts is what the client holds afterwards.
        await self._broker().run(
            [{"command": "addClientRole", "username": hub_user, "rolename": HUB_ROLE}],
            tolerate=("already", "Internal error"),
        )
        (answer,) = await self._broker().run([{"command": "getClient", "username": hub_user}])
        roles = {
            r.get("rolename") for r in answer.get("data", {}).get("client", {}).get("roles", [])
        }
        if HUB_ROLE not in roles:
            raise IdentityError(f"the broker did not give {hub_user!r} the {HUB_ROLE} role")

    async def list(self) -> list[Identity]:
        """Every identity the hub made, by name."""
        rows = await self._db.fetch("SELECT * FROM broker_identities ORDER BY name")
        return [identity_of(r) for r in rows]

    async def get(self, name: str) -> Identity:
        """One identity (`IdentityError` if the hub made none of that name)."""
        rows = await self._db.fetch("SELECT * FROM broker_identities WHERE name = $1", name)
        if not rows:
            raise IdentityError(
                f"no broker identity {name!r}: `millstream-hub devices list` shows them"
            )
        return identity_of(rows[0])

    async def add(self, identity: Identity, who: str) -> str:
        """Create the broker client and its role; the password (returned) is never kept. An
        identity that logs in with a certificate gets none (""): the broker takes its name from
        the certificate's common name and cannot log it in with a password."""
        rows = await self._db.fetch(
            "SELECT kind FROM broker_identities WHERE name = $1", identity.name
        )
        if rows:
            raise IdentityError(
                f"{rows[0]['kind']} {identity.name!r} exists: rotate its password, or remove it"
                " first"
            )
        password = new_password() if identity.auth == "password" else ""
        role = role_name(identity)
        client: dict[str, object] = {
            "command": "createClient",
            "username": identity.name,
            "textname": f"Millstream {identity.kind} ({identity.site}/{identity.line})",
            "roles": [{"rolename": role}],
        }
        if password:
            client["password"] = password
        await self._broker().run(
            [{"command": "createRole", "rolename": role, "acls": acls(identity)}, client]
        )
        now = self._now()
        await self._db.execute(
            "INSERT INTO broker_identities (name, kind, site, line, machines, src, disabled,"
            " created_at, created_by, updated_at, auth) VALUES ($1, $2, $3, $4, $5, $6, false,"
            " $7, $8, $7, $9)",
            identity.name,
            identity.kind,
            identity.site,
            identity.line,
            json.dumps(list(identity.machines)),
            identity.src,
            now,
            who,
            identity.auth,
        )
        return password

    async def set_disabled(self, name: str, disabled: bool) -> Identity:
        """Disable (the broker disconnects it at once and refuses it) or enable again."""
        identity = await self.get(name)
        command = "disableClient" if disabled else "enableClient"
        await self._broker().run([{"command": command, "username": name}])
        if identity.auth == "certificate":
            # The broker never asks the plugin to log a certificate in, so "disabled" alone
            # would not keep it out: without its role it may connect but neither publish nor
            # subscribe to anything. (Done twice is harmless.)
            command = "removeClientRole" if disabled else "addClientRole"
            role = {"username": name, "rolename": role_name(identity)}
            await self._broker().run([{"command": command, **role}], tolerate=("not", "already"))
        await self._db.execute(
            "UPDATE broker_identities SET disabled = $2, updated_at = $3 WHERE name = $1",
            name,
            disabled,
            self._now(),
        )
        return identity

    async def rotate(self, name: str) -> str:
        """A new password; the old one stops working at once."""
        identity = await self.get(name)
        if identity.auth == "certificate":
            raise IdentityError(
                f"{name!r} logs in with a client certificate, not a password: issue it a new one"
                f" (packaging/mosquitto/make-certs.sh --client {name}); to shut out the old one"
                " before it expires, remove the identity and add it again under a new name"
            )
        password = new_password()
        await self._broker().run(
            [{"command": "setClientPassword", "username": name, "password": password}]
        )
        await self._db.execute(
            "UPDATE broker_identities SET updated_at = $2 WHERE name = $1", name, self._now()
        )
        return password

    async def remove(self, name: str) -> None:
        """Delete the broker client and its role (gone already on the broker: fine)."""
        identity = await self.get(name)
        await self._broker().run(
            [
                {"command": "deleteClient", "username": name},
                {"command": "deleteRole", "rolename": role_name(identity)},
            ],
            tolerate=("not found",),
        )
        await self._db.execute("DELETE FROM broker_identities WHERE name = $1", name)
