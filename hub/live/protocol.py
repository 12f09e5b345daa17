"""The WebSocket protocol's client messages (pure parsing; docs/api.md).

```
{"type": "auth", "token": "…"}                        first message, unless ?token= was given
{"type": "subscribe", "machines": ["site/line/machine", …], "series": [12, 13], "alerts": true}
{"type": "unsubscribe", "machines": […], "series": […], "alerts": true}
{"type": "ping"}
```
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Literal

import wire

__all__ = ["ClientMessage", "ProtocolError", "parse_client_message"]

_SEG = wire.SEGMENT_PATTERN
_MACHINE = re.compile(f"^{_SEG}/{_SEG}/{_SEG}$")
MAX_ITEMS = 10_000
# Series ids are PostgreSQL `integer`s: a larger one is no series, never a query error.
MAX_SERIES_ID = 2**31 - 1


class ProtocolError(ValueError):
    """A client message the server cannot act on; answered with an error message."""


@dataclass(frozen=True, slots=True)
class ClientMessage:
    """One parsed client message."""

    type: Literal["auth", "subscribe", "unsubscribe", "ping"]
    token: str = ""
    machines: tuple[str, ...] = ()
    series: tuple[int, ...] = ()
    alerts: bool = False  # alert changes (docs/alerts.md), every machine's


def parse_client_message(text: str) -> ClientMessage:
    """Parse and validate one client text frame."""
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise ProtocolError("not JSON") from exc
    if not isinstance(doc, dict):
        raise ProtocolError("expected a JSON object")
    kind = doc.get("type")
    if kind == "ping":
        return ClientMessage("ping")
    if kind == "auth":
        token = doc.get("token")
        if not isinstance(token, str) or not token:
            raise ProtocolError("auth needs a token")
        return ClientMessage("auth", token=token)
    if kind in ("subscribe", "unsubscribe"):
        machines = doc.get("machines", [])
        series = doc.get("series", [])
        if not isinstance(machines, list) or not all(
            isinstance(m, str) and _MACHINE.match(m) for m in machines
        ):
            raise ProtocolError("machines must be a list of 'site/line/machine' strings")
        if not isinstance(series, list) or not all(
            isinstance(s, int) and not isinstance(s, bool) and 0 < s <= MAX_SERIES_ID
            for s in series
        ):
            raise ProtocolError("series must be a list of series ids (1 … 2147483647)")
        if len(machines) + len(series) > MAX_ITEMS:
            raise ProtocolError(f"at most {MAX_ITEMS} machines and series per message")
        alerts = doc.get("alerts", False)
        if not isinstance(alerts, bool):
            raise ProtocolError("alerts must be true or false")
        return ClientMessage(kind, machines=tuple(machines), series=tuple(series), alerts=alerts)
    raise ProtocolError("type must be auth, subscribe, unsubscribe or ping")
