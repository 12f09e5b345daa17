"""OPC-UA acquisition over asyncua: subscriptions, polling, pinned certificates, self-healing."""

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
