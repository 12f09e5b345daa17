"""One logging setup for every Millstream process: one JSON object per line on stderr (journald
and `docker logs` keep it), with secrets redacted.

Every line passes `redact` on its way out, whoever logged it (our code, uvicorn, a library):
a WebSocket client authenticating with `/ws?token=…` makes uvicorn log the path with its query
string, and an exception may quote a broker URL with its password. `redact` masks credentials
in query strings, `Bearer` headers, JWTs, API key secrets, passwords in URLs and every value
registered with `hide_secret` (the broker password, the JWT signing secret).
"""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Mapping

__all__ = ["REDACTED", "JsonFormatter", "hide_secret", "redact", "setup_logging"]

REDACTED = "[redacted]"

# Query parameters that carry credentials (`?token=` is what the hub's /ws accepts, docs/api.md).
_QUERY_SECRET = re.compile(
    r"(?i)([?&;](?:access_token|refresh_token|id_token|token|api[_-]?key|key|password|passwd"
    r"|secret)=)[^&;\s\"#]+"
)
_BEARER = re.compile(r"(?i)\b(bearer\s+)[^\s\"',;]+")
# RFC 7519 §3: header.payload.signature, each base64url; a JSON header starts `{"` = `eyJ`.
_JWT = re.compile(r"\beyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")
# API keys are `msk_<12 hex id>_<secret>` (hub/auth/tokens.py): the id may be logged, never
# the secret.
_API_KEY = re.compile(r"\b(msk_[0-9a-f]{12}_)[A-Za-z0-9_-]+")
_URL_PASSWORD = re.compile(r"(\b[A-Za-z][A-Za-z0-9+.-]*://[^\s/:@\"']*):[^\s/@\"']+@")
# A password or key shorter than this is not masked as a literal: masking "a" would mangle
# every line, and nothing that short is a secret worth the name.
_MIN_LITERAL = 4

_literals: set[str] = set()


def hide_secret(value: str | bytes | None) -> None:
    """Never log `value` (a password or key this process knows), wherever it shows up."""
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if value and len(value) >= _MIN_LITERAL:
        _literals.add(value)


def redact(text: str) -> str:
    """`text` with every credential it carries replaced by `[redacted]`."""
    for literal in sorted(_literals, key=len, reverse=True):
        if literal in text:
            text = text.replace(literal, REDACTED)
    text = _QUERY_SECRET.sub(rf"\1{REDACTED}", text)
    text = _BEARER.sub(rf"\1{REDACTED}", text)
    text = _JWT.sub(REDACTED, text)
    text = _API_KEY.sub(rf"\1{REDACTED}", text)
    return _URL_PASSWORD.sub(rf"\1:{REDACTED}@", text)


class JsonFormatter(logging.Formatter):
    """ts, level, logger, msg, the record's `fields` and the traceback, every text redacted."""

    def format(self, record: logging.LogRecord) -> str:
        """One log record as one line of JSON."""
        entry = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        # Structured context: `log.info("request", extra={"fields": {...}})` (request ids etc.).
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            entry.update(fields)
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        # Secrets may sit in the message, a field or a traceback: every text is redacted.
        for key, value in entry.items():
            if isinstance(value, str):
                entry[key] = redact(value)
        return json.dumps(entry, ensure_ascii=False)


def setup_logging(level: str = "INFO", quieter: Mapping[str, int] | None = None) -> None:
    """Route every logger to stderr as JSON lines; `quieter` raises chatty libraries' levels
    (logger name → level) unless `level` is debug."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    if root.level > logging.DEBUG:
        for name, quiet in (quieter or {}).items():
            logging.getLogger(name).setLevel(quiet)
