"""Access tokens (HS256 JWT) and opaque secrets (refresh tokens, API keys); pure, `now` passed in.

Expiry is checked here against the `now` the caller passes, not by PyJWT against the clock, so
the rule is testable without waiting.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Literal

import jwt

from hub.auth.errors import NotAuthenticated
from hub.auth.roles import Role

__all__ = [
    "API_KEY_PREFIX",
    "Principal",
    "hashes_equal",
    "issue_access_token",
    "make_api_key",
    "new_secret",
    "parse_api_key",
    "read_access_token",
    "secret_hash",
]

_ALGORITHM = "HS256"
_ISSUER = "millstream-hub"
API_KEY_PREFIX = "msk_"


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: a user (by name) or an API key (by its id), with its role."""

    subject: str
    role: Role
    kind: Literal["user", "api_key"] = "user"


def issue_access_token(secret: bytes, principal: Principal, now_s: int, ttl_s: int) -> str:
    """A signed access token for `principal`, valid from now_s for ttl_s seconds."""
    claims = {
        "iss": _ISSUER,
        "sub": principal.subject,
        "role": principal.role.value,
        "iat": now_s,
        "exp": now_s + ttl_s,
        # Two tokens issued in the same second must still differ (a rotated pair, say).
        "jti": secrets.token_hex(8),
    }
    return jwt.encode(claims, secret, algorithm=_ALGORITHM)


def read_access_token(secret: bytes, token: str, now_s: int) -> Principal:
    """The principal a valid token names; `NotAuthenticated` if forged, malformed or expired."""
    try:
        claims = jwt.decode(
            token,
            secret,
            algorithms=[_ALGORITHM],  # never "none", never an algorithm the token picks
            issuer=_ISSUER,
            # Time claims are checked below against the caller's `now`, not PyJWT's clock.
            options={
                "verify_exp": False,
                "verify_iat": False,
                "verify_nbf": False,
                "require": ["exp", "sub", "role", "iss"],
            },
        )
    except jwt.PyJWTError as exc:
        raise NotAuthenticated(f"invalid access token: {exc}") from exc
    exp = claims["exp"]
    if not isinstance(exp, int) or now_s >= exp:
        raise NotAuthenticated("access token expired")
    try:
        role = Role(claims["role"])
    except ValueError as exc:
        raise NotAuthenticated("access token names an unknown role") from exc
    return Principal(str(claims["sub"]), role, "user")


def new_secret() -> str:
    """A fresh 256-bit random token, URL-safe."""
    return secrets.token_urlsafe(32)


def secret_hash(token: str) -> str:
    """SHA-256 of a high-entropy token: enough for 256 random bits, unlike for passwords."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def make_api_key() -> tuple[str, str, str]:
    """A new API key: (key id, full key to hand out once, hash to store)."""
    key_id = secrets.token_hex(6)
    secret = new_secret()
    return key_id, f"{API_KEY_PREFIX}{key_id}_{secret}", secret_hash(secret)


def parse_api_key(text: str) -> tuple[str, str] | None:
    """(key id, secret) of a well-formed API key, else None."""
    if not text.startswith(API_KEY_PREFIX):
        return None
    key_id, sep, secret = text[len(API_KEY_PREFIX) :].partition("_")
    if not sep or len(key_id) != 12 or not secret:
        return None
    return key_id, secret


def hashes_equal(a: str, b: str) -> bool:
    """Constant-time comparison of two stored hashes."""
    return hmac.compare_digest(a.encode(), b.encode())
