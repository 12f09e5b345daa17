"""Password hashing with argon2id (argon2-cffi's defaults, RFC 9106 second recommendation)."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

__all__ = ["DUMMY_HASH", "hash_password", "needs_rehash", "verify_password"]

_HASHER = PasswordHasher()

# Verified against when the user does not exist, so a login for an unknown name costs the same
# time as one with a wrong password (no user enumeration by timing).
DUMMY_HASH = _HASHER.hash("millstream-no-such-user")


def _encode(password: str) -> bytes:
    # JSON may carry lone surrogates; they must fail the comparison, not crash the hash.
    return password.encode("utf-8", "surrogatepass")


def hash_password(password: str) -> str:
    """An argon2id hash string (salt and parameters included)."""
    return _HASHER.hash(_encode(password))


def verify_password(stored: str, password: str) -> bool:
    """True when `password` matches the stored hash."""
    try:
        return _HASHER.verify(stored, _encode(password))
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(stored: str) -> bool:
    """True when the hash was made with weaker parameters than today's."""
    return _HASHER.check_needs_rehash(stored)
