"""The JWT signing secret: required, never defaulted, at least 32 bytes (RFC 7518 §3.2), and
not an obviously made-up one."""

from __future__ import annotations

from hub.config import HubConfig
from hub.errors import ConfigError, ConfigProblem

__all__ = ["MIN_DISTINCT_BYTES", "MIN_SECRET_BYTES", "jwt_secret"]

# RFC 7518 §3.2: an HS256 key must be at least as long as the hash output (256 bits).
MIN_SECRET_BYTES = 32
# Fewer different bytes than this is a made-up secret, not a random one (even hex has 16).
MIN_DISTINCT_BYTES = 8

_HINT = (
    "set MILLSTREAM_JWT_SECRET (or jwt_secret in the config file) to a random value, e.g. "
    "`python -c 'import secrets; print(secrets.token_urlsafe(48))'`"
)


def jwt_secret(config: HubConfig) -> bytes:
    """The configured signing secret; `ConfigError` when it is missing or weak."""
    if config.jwt_secret is None:
        raise ConfigError(
            [ConfigProblem("<config>", "jwt_secret", "no JWT signing secret configured", _HINT)]
        )
    secret = config.jwt_secret.get_secret_value().encode("utf-8")
    if len(secret) < MIN_SECRET_BYTES:
        raise ConfigError(
            [
                ConfigProblem(
                    "<config>",
                    "jwt_secret",
                    f"JWT signing secret is {len(secret)} bytes; at least {MIN_SECRET_BYTES}"
                    " are required",
                    _HINT,
                )
            ]
        )
    distinct = len(set(secret))
    if distinct < MIN_DISTINCT_BYTES:
        # 32 bytes of one character ("xxxx…", or a two-letter pattern) pass the length check
        # and are guessed at once: a random secret of that length has ~25 distinct bytes.
        raise ConfigError(
            [
                ConfigProblem(
                    "<config>",
                    "jwt_secret",
                    f"JWT signing secret has only {distinct} different characters: anyone can"
                    " guess it",
                    _HINT,
                )
            ]
        )
    return secret
