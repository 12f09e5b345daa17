"""Broker identities of MQTT devices and agents (admin): what `millstream-hub devices …` and
`agents add|…` do, over HTTP (docs/deploy.md "Broker identities with dynamic security")."""

# No `from __future__ import annotations`: FastAPI must resolve `Depends(admin)`, a closure
# variable, when it reads the signature (as in auth_routes.py).

from collections.abc import Awaitable, Callable
from typing import Annotated, TypeVar

from fastapi import APIRouter, Depends, HTTPException, Path

import wire
from hub.api.v1.deps import requires
from hub.api.v1.schemas import IdentityIn, IdentityOut, IdentityPasswordOut
from hub.api.v1.services import ApiServices
from hub.auth import Principal, Role
from hub.devices import BrokerIdentities, Dynsec, DynsecError, Identity
from hub.devices.service import IdentityError

__all__ = ["identities_router"]

_T = TypeVar("_T")
Name = Annotated[str, Path(pattern=f"^{wire.SEGMENT_PATTERN}$")]


def _out(i: Identity) -> IdentityOut:
    return IdentityOut(
        name=i.name, kind=i.kind, site=i.site, line=i.line, machines=list(i.machines),
        src=i.src, disabled=i.disabled, created_at=i.created_at, created_by=i.created_by,
    )  # fmt: skip


def identities_router(services: ApiServices) -> APIRouter:
    """Identity routes (all admin: an identity is access to the plant's broker)."""
    admin = requires(services, Role.ADMIN)
    router = APIRouter(tags=["broker identities"], responses={401: {}, 403: {}, 429: {}})

    async def on_broker(
        op: Callable[[BrokerIdentities], Awaitable[_T]], *, name: str | None = None
    ) -> _T:
        # Cheap refusals first (an unknown name is a 404 without a broker round trip), and none
        # at all without a broker session of this hub; then one admin session per change:
        # changes are rare, and no admin session lingers.
        if name is not None:
            await existing(name)
        if services.publish is None:
            raise HTTPException(503, "this hub has no broker connection")
        try:
            async with Dynsec(services.config.mqtt) as dynsec:
                return await op(BrokerIdentities(services.db, dynsec, services.now_ms))
        except IdentityError as exc:
            status = 404 if "no broker identity" in str(exc) else 409
            raise HTTPException(status, str(exc)) from None
        except DynsecError as exc:
            raise HTTPException(503, str(exc)) from None

    def local() -> BrokerIdentities:
        # Reads need only the hub's table, not the broker.
        return BrokerIdentities(services.db, None, services.now_ms)

    async def existing(name: str) -> Identity:
        try:
            return await local().get(name)
        except IdentityError as exc:
            raise HTTPException(404, str(exc)) from None

    @router.get("/identities", dependencies=[Depends(admin)])
    async def identities() -> list[IdentityOut]:
        """Every device and agent identity the hub made (never a password)."""
        return [_out(i) for i in await local().list()]

    @router.get("/identities/{name}", dependencies=[Depends(admin)], responses={404: {}})
    async def identity(name: Name) -> IdentityOut:
        """One identity."""
        return _out(await existing(name))

    @router.post("/identities", status_code=201, responses={409: {}, 422: {}, 503: {}})
    async def add(
        body: IdentityIn, who: Annotated[Principal, Depends(admin)]
    ) -> IdentityPasswordOut:
        """Make an identity in the broker; its password is in this answer and nowhere else."""
        try:
            new = Identity(
                body.name, body.kind, body.site, body.line, tuple(body.machines), body.src
            )
        except ValueError as exc:
            raise HTTPException(422, str(exc)) from None
        if any(i.name == new.name for i in await local().list()):
            raise HTTPException(409, f"{new.name!r} exists: rotate its password, or remove it")
        password = await on_broker(lambda ids: ids.add(new, who.subject))
        return IdentityPasswordOut(name=new.name, password=password)

    @router.post("/identities/{name}/disable", responses={404: {}, 503: {}})
    async def disable(name: Name, _who: Annotated[Principal, Depends(admin)]) -> IdentityOut:
        """Cut it off now (the broker disconnects and refuses it)."""
        await on_broker(lambda ids: ids.set_disabled(name, True), name=name)
        return _out(await existing(name))

    @router.post("/identities/{name}/enable", responses={404: {}, 503: {}})
    async def enable(name: Name, _who: Annotated[Principal, Depends(admin)]) -> IdentityOut:
        """Let it connect again."""
        await on_broker(lambda ids: ids.set_disabled(name, False), name=name)
        return _out(await existing(name))

    @router.post("/identities/{name}/rotate", responses={404: {}, 503: {}})
    async def rotate(name: Name, _who: Annotated[Principal, Depends(admin)]) -> IdentityPasswordOut:
        """A new password (in this answer only); the old one stops working at once."""
        password = await on_broker(lambda ids: ids.rotate(name), name=name)
        return IdentityPasswordOut(name=name, password=password)

    @router.delete("/identities/{name}", status_code=204, responses={404: {}, 503: {}})
    async def remove(name: Name, _who: Annotated[Principal, Depends(admin)]) -> None:
        """Delete it from the broker and the hub (its data stays)."""
        await on_broker(lambda ids: ids.remove(name), name=name)

    return router
