"""One logging setup for the agent: one JSON object per line on stderr (journald keeps it).

Every line passes `redact` on its way out, whoever logged it: a password in a broker URL
(`mqtt://agent:secret@host`) and every value registered with `hide_secret` (the broker password
from `password_env`, `password_file` or the URL) are masked.
"""

from __future__ import annotations

import json
import logging
import re
import sys

__all__ = ["REDACTED", "hide_secret", "redact", "setup_logging"]

REDACTED = "[redacted]"

_URL_PASSWORD = re.compile(r"(\b[A-Za-z][A-Za-z0-9+.-]*://[^\s/:@\"']*):[^\s/@\"']+@")
_QUERY_SECRET = re.compile(r"(?i)([?&;](?:token|api[_-]?key|password|passwd|secret)=)[^&;\s\"#]+")
# A password shorter than this is not masked as a literal: masking "a" would mangle every line.
_MIN_LITERAL = 4

_literals: set[str] = set()


def hide_secret(value: str | None) -> None:
    """Never log `value` (a password this process knows), wherever it shows up."""
    if value and len(value) >= _MIN_LITERAL:
        _literals.add(value)


def redact(text: str) -> str:
    """`text` with every credential it carries replaced by `[redacted]`."""
    for literal in sorted(_literals, key=len, reverse=True):
        if literal in text:
            text = text.replace(literal, REDACTED)
    text = _QUERY_SECRET.sub(rf"\1{REDACTED}", text)
    return _URL_PASSWORD.sub(rf"\1:{REDACTED}@", text)


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": redact(record.getMessage()),
        }
        if record.exc_info:
            entry["exc"] = redact(self.formatException(record.exc_info))
        return json.dumps(entry, ensure_ascii=False)


def setup_logging(level: str = "INFO") -> None:
    """Route every logger to stderr as JSON lines."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # asyncua narrates every secure-channel step at INFO; its warnings are what operators need.
    if root.level > logging.DEBUG:
        logging.getLogger("asyncua").setLevel(logging.WARNING)
