"""Roles, weakest first: viewer (read), operator (also acknowledges alerts), admin (everything)."""

from __future__ import annotations

from enum import StrEnum

__all__ = ["Role", "allows"]


class Role(StrEnum):
    """A user's or API key's role."""

    VIEWER = "viewer"
    OPERATOR = "operator"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        """Position in the order viewer < operator < admin."""
        return _ORDER.index(self)


_ORDER = (Role.VIEWER, Role.OPERATOR, Role.ADMIN)


def allows(held: Role, needed: Role) -> bool:
    """True when a principal holding `held` may do what needs `needed`."""
    return held.rank >= needed.rank
