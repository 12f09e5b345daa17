"""Security headers on every HTTP response the hub sends (an ASGI middleware; `/ws` untouched)."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["SecurityHeaders"]

# The dashboard loads only its own bundled assets and talks only to its own origin ('self'
# covers ws:/wss: to the same host in CSP level 3). Inline style attributes stay allowed: the
# charts set element styles; no inline script is.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
_ALWAYS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"content-security-policy", CSP.encode()),
]
# Token responses must never sit in a browser or proxy cache.
_NO_STORE = [(b"cache-control", b"no-store")]
_TOKEN_PATHS = ("/api/v1/auth/",)


class SecurityHeaders:
    """Add the headers above to each HTTP response, unless the route set them itself."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        extra = _ALWAYS + (_NO_STORE if scope["path"].startswith(_TOKEN_PATHS) else [])

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                headers += [(name, value) for name, value in extra if name not in present]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)
