"""Authentication failures, below the hub's root exception; the API maps them to 401/403/429.

```
MillstreamHubError
└── AuthError
    ├── NotAuthenticated     401: no credentials, or bad/expired/forged/revoked ones
    ├── Forbidden            403: authenticated, but the role is too weak
    └── RateLimited          429: too many requests; carries retry_after_s
```
"""

from __future__ import annotations

from hub.errors import MillstreamHubError

__all__ = ["AuthError", "Forbidden", "NotAuthenticated", "RateLimited"]


class AuthError(MillstreamHubError):
    """Root of the API's authentication and authorisation failures."""


class NotAuthenticated(AuthError):  # noqa: N818 -- names the HTTP outcome callers map it to
    """The request carries no valid credentials."""


class Forbidden(AuthError):  # noqa: N818 -- names the HTTP outcome callers map it to
    """The credentials are valid but their role may not do this."""


class RateLimited(AuthError):  # noqa: N818 -- names the HTTP outcome callers map it to
    """Too many requests from this user or address."""

    def __init__(self, retry_after_s: float) -> None:
        self.retry_after_s = retry_after_s
        super().__init__(f"rate limited; retry after {retry_after_s:.1f} s")
