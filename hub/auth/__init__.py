"""Authentication and roles: users (argon2), JWT access tokens, rotating refresh tokens,
API keys, rate limits."""

from hub.auth.errors import AuthError, Forbidden, NotAuthenticated, RateLimited
from hub.auth.passwords import hash_password, verify_password
from hub.auth.ratelimit import (
    FallbackRateLimiter,
    MemoryRateLimiter,
    RateLimiter,
    RedisRateLimiter,
)
from hub.auth.roles import Role, allows
from hub.auth.secret import MIN_SECRET_BYTES, jwt_secret
from hub.auth.service import AuthService, TokenPair
from hub.auth.store import AuthStore, UserRow
from hub.auth.tokens import Principal, make_api_key

__all__ = [
    "MIN_SECRET_BYTES",
    "AuthError",
    "AuthService",
    "AuthStore",
    "FallbackRateLimiter",
    "Forbidden",
    "MemoryRateLimiter",
    "NotAuthenticated",
    "Principal",
    "RateLimited",
    "RateLimiter",
    "RedisRateLimiter",
    "Role",
    "TokenPair",
    "UserRow",
    "allows",
    "hash_password",
    "jwt_secret",
    "make_api_key",
    "verify_password",
]
