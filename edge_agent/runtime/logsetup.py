"""The agent's logging: JSON lines with secrets redacted (`millstream_common.logjson`)."""

from __future__ import annotations

import logging

from millstream_common.logjson import setup_logging as _setup_json

__all__ = ["setup_logging"]

# asyncua narrates every secure-channel step at INFO; its warnings are what operators need.
_CHATTY = {"asyncua": logging.WARNING}


def setup_logging(level: str = "INFO") -> None:
    """Route every logger to stderr as JSON lines, with chatty libraries at warning."""
    _setup_json(level, _CHATTY)
