"""Broker identities of MQTT devices and agents (admin): what `millstream-hub devices …` and
`agents add|…` do, over HTTP (docs/deploy.md "Broker identities with dynamic security"), and the
conformance check `devices watch` as a WebSocket (docs/api.md "Watching an identity")."""

# No `from __future__ import annotations`: FastAPI must resolve `Depends(admin)`, a closure
# variable, when it reads the signature (as in auth_routes.py).

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Annotated, TypeVar

from fastapi import APIRouter, Depends, HTTPException, Path, WebSocket, WebSocketDisconnect
from starlette.types import Message

import wire
from hub.api.v1.deps import requires
from hub.api.v1.schemas import IdentityIn, IdentityOut, IdentityPasswordOut
from hub.api.v1.services import ApiServices
from hub.auth import NotAuthenticated, Principal, RateLimited, Role, allows
from hub.devices import BrokerIdentities, Dynsec, DynsecError, Identity
from hub.devices.service import IdentityError
from hub.devices.watch import Watch
from hub.errors import MillstreamHubError
from hub.ingest.owners import load_owners
from hub.live import ProtocolError, parse_client_message

__all__ = ["identities_router"]

log = logging.getLogger(__name__)

_T = TypeVar("_T")
Name = Annotated[str, Path(pattern=f"^{wire.SEGMENT_PATTERN}$")]

AUTH_TIMEOUT_S = 5.0  # as on /ws: the first message must bring the credentials
# Close codes in the private range (RFC 6455 §7.4.2), mirroring HTTP statuses as /ws does.
CLOSE_UNAUTHORIZED = 4401
CLOSE_FORBIDDEN = 4403
CLOSE_NOT_FOUND = 4404
CLOSE_RATE_LIMITED = 4429
CLOSE_UNAVAILABLE = 4503


class _WatchRefusedError(Exception):
    """Why a watch socket is closed before (or instead of) watching: code and words."""

    def __init__(self, code: int, text: str) -> None:
        super().__init__(text)
        self.code = code


def _out(i: Identity) -> IdentityOut:
    return IdentityOut(
        name=i.name, kind=i.kind, site=i.site, line=i.line, machines=list(i.machines),
        src=i.src, disabled=i.disabled, created_at=i.created_at, created_by=i.created_by,
        auth=i.auth,
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
                body.name, body.kind, body.site, body.line, tuple(body.machines), body.src,
                auth=body.auth,
            )  # fmt: skip
        except ValueError as exc:
            raise HTTPException(422, str(exc)) from None
        if any(i.name == new.name for i in await local().list()):
            raise HTTPException(409, f"{new.name!r} exists: rotate its password, or remove it")
        password = await on_broker(lambda ids: ids.add(new, who.subject))
        return IdentityPasswordOut(name=new.name, password=password or None)

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

    @router.websocket("/identities/{name}/watch")
    async def watch(websocket: WebSocket, name: str) -> None:
        """The conformance check live (admin): each message the identity publishes, as the hub
        judges it. First message `{"type": "auth", "token": …}`; then `watching` once the
        broker took the subscriptions, and one `verdict` per message (docs/api.md)."""
        await _serve_watch(services, websocket, name)

    return router


async def _serve_watch(services: ApiServices, websocket: WebSocket, name: str) -> None:
    """Serve one watch socket: authenticate, find the identity, then send what the hub makes
    of each message it publishes until the client goes."""
    await websocket.accept()
    try:
        who = await _admin(services, websocket)
        identity = await _watchable(services, name)
        owners = await load_owners(services.db)
        async with Watch(services.config.mqtt, services.db, identity, owners) as judged:
            log.info("watch of %s opened by %s", name, who.subject)
            watching = {"type": "watching", "name": name, "topics": judged.topics}
            await websocket.send_text(json.dumps(watching))
            await _pump_until_closed(websocket, judged)
    except _WatchRefusedError as refused:
        await _close(websocket, refused.code, str(refused))
    except TimeoutError:
        text = "the broker did not take the watch's subscriptions in time: is it reachable?"
        await _close(websocket, CLOSE_UNAVAILABLE, text)
    except MillstreamHubError as exc:
        await _close(websocket, CLOSE_UNAVAILABLE, f"watch stopped: {exc}")
    except WebSocketDisconnect:
        pass


async def _admin(services: ApiServices, websocket: WebSocket) -> Principal:
    # Credentials come in the first message, never in the URL (uvicorn logs each socket's path
    # with its query string, and so may a proxy in front), as on /ws; and the same budgets as
    # every API request are spent.
    address = websocket.client.host if websocket.client else "unknown"
    limits = services.config.api
    try:
        await services.limit(f"ip:{address}", limits.requests_per_minute)
        async with asyncio.timeout(AUTH_TIMEOUT_S):
            token = _token(await websocket.receive())
        principal = await services.auth.authenticate(token)
        await services.limit(f"who:{principal.subject}", limits.requests_per_minute)
    except (NotAuthenticated, ProtocolError, TimeoutError) as exc:
        raise _WatchRefusedError(CLOSE_UNAUTHORIZED, f"not authenticated: {exc}") from None
    except RateLimited:
        raise _WatchRefusedError(CLOSE_RATE_LIMITED, "too many requests") from None
    if not allows(principal.role, Role.ADMIN):
        raise _WatchRefusedError(
            CLOSE_FORBIDDEN, f"needs role admin; you have {principal.role.value}"
        )
    return principal


def _token(message: Message) -> str:
    """The credential of the socket's first message (`{"type": "auth", "token": …}`)."""
    if message["type"] == "websocket.disconnect":
        raise WebSocketDisconnect(message.get("code", 1000))
    text = message.get("text")
    if text is None:
        raise ProtocolError("frames must be text (JSON)")
    first = parse_client_message(text)
    if first.type != "auth":
        raise NotAuthenticated("first message must be auth")
    return first.token


async def _watchable(services: ApiServices, name: str) -> Identity:
    try:
        identity = await BrokerIdentities(services.db, None, services.now_ms).get(name)
    except IdentityError as exc:
        raise _WatchRefusedError(CLOSE_NOT_FOUND, str(exc)) from None
    if services.publish is None:
        raise _WatchRefusedError(CLOSE_UNAVAILABLE, "this hub has no broker connection")
    return identity


async def _pump_until_closed(websocket: WebSocket, judged: Watch) -> None:
    """Send each judged message until the client goes (or the server shuts down: uvicorn then
    hands the socket a disconnect, so an open watch never holds the hub's shutdown up)."""

    async def pump() -> None:
        async for one in judged:
            await websocket.send_text(json.dumps(one.doc()))

    async def until_disconnect() -> None:
        # What the client says after auth is ignored; this only notices it leaving.
        while (await websocket.receive())["type"] != "websocket.disconnect":
            pass

    sending = asyncio.create_task(pump(), name="watch-send")
    listening = asyncio.create_task(until_disconnect(), name="watch-recv")
    try:
        await asyncio.wait({sending, listening}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (sending, listening):
            task.cancel()
        await asyncio.gather(sending, listening, return_exceptions=True)
    failed = None if sending.cancelled() else sending.exception()
    if isinstance(failed, MillstreamHubError):
        raise failed  # storage away: the caller says so and closes
    if failed is not None:
        log.debug("watch socket closed: %r", failed)


_CLOSE_REASONS = {
    CLOSE_UNAUTHORIZED: "unauthorized",
    CLOSE_FORBIDDEN: "forbidden",
    CLOSE_NOT_FOUND: "not found",
    CLOSE_RATE_LIMITED: "rate limited",
    CLOSE_UNAVAILABLE: "unavailable",
}


async def _close(websocket: WebSocket, code: int, text: str) -> None:
    # The words go in a message: a close frame's reason is limited to 123 bytes.
    with contextlib.suppress(Exception):
        await websocket.send_text(json.dumps({"type": "error", "error": text}))
        await websocket.close(code, _CLOSE_REASONS.get(code, ""))
