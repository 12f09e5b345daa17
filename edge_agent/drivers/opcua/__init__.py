"""OPC-UA acquisition over asyncua: subscriptions, polling, pinned certificates, self-healing.

Names are imported lazily so the config loader can use `points` and `security` (pure) without
paying for asyncua's import on every `edge-agent validate`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from edge_agent.drivers.opcua.driver import DriverStats, OpcuaDriver
    from edge_agent.drivers.opcua.errors import (
        AuthenticationFailed,
        ClientCertificateRejected,
        ServerCertificateChanged,
    )
    from edge_agent.drivers.opcua.points import Deadband, OpcuaEndpoint, OpcuaPoint
    from edge_agent.drivers.opcua.session import OpcuaSession, SessionOptions

__all__ = [
    "AuthenticationFailed",
    "ClientCertificateRejected",
    "Deadband",
    "DriverStats",
    "OpcuaDriver",
    "OpcuaEndpoint",
    "OpcuaPoint",
    "OpcuaSession",
    "ServerCertificateChanged",
    "SessionOptions",
]

_HOMES = {
    "AuthenticationFailed": "errors",
    "ClientCertificateRejected": "errors",
    "ServerCertificateChanged": "errors",
    "Deadband": "points",
    "OpcuaEndpoint": "points",
    "OpcuaPoint": "points",
    "DriverStats": "driver",
    "OpcuaDriver": "driver",
    "OpcuaSession": "session",
    "SessionOptions": "session",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{home}"), name)
