"""A configured OPC-UA device → its driver: the `opcua` entry of the runtime's protocol registry
(edge_agent/runtime/registry.py). The driver itself never sees the config models."""

from __future__ import annotations

from collections.abc import Mapping

from edge_agent.config import LoadedConfig, OpcUaProfile, ResolvedDevice, state_dir
from edge_agent.config.points import opcua_points
from edge_agent.drivers.opcua.driver import OpcuaDriver
from edge_agent.drivers.opcua.points import OpcuaEndpoint, OpcuaEvents, OpcuaMethod
from edge_agent.drivers.opcua.session import SessionOptions
from edge_agent.errors import ConfigError, ConfigProblem
from millstream_common.logjson import hide_secret

__all__ = ["opcua_driver"]


def opcua_driver(
    loaded: LoadedConfig, resolved: ResolvedDevice, environ: Mapping[str, str]
) -> OpcuaDriver:
    """The driver of one configured OPC-UA device (its password from the environment)."""
    machine = resolved.device.machine
    conn = resolved.device.opcua
    where = (str(loaded.path), f"device {machine}")
    if conn is None or not isinstance(resolved.profile, OpcUaProfile):
        raise ConfigError([ConfigProblem(*where, "is not an OPC-UA device")])
    password = None
    if conn.password_env:
        password = environ.get(conn.password_env)
        if password is None:
            raise ConfigError(
                [
                    ConfigProblem(
                        *where,
                        f"environment variable {conn.password_env} is not set",
                        f"export {conn.password_env}=… (the OPC-UA password) before running",
                    )
                ]
            )
    hide_secret(password)  # whatever logs later (asyncua included) never shows it
    endpoint = OpcuaEndpoint(conn.url, conn.security, conn.username, password)
    options = SessionOptions(
        state_dir=state_dir(loaded.config, loaded.path), timeout_s=conn.timeout_ms / 1000
    )
    methods = [OpcuaMethod(m.name, m.object, m.method) for m in resolved.profile.methods]
    spec = resolved.profile.events
    events = (
        None
        if spec is None
        else OpcuaEvents(notifiers=spec.notifiers, fields=spec.fields, refresh=spec.refresh)
    )
    return OpcuaDriver(
        machine,
        endpoint,
        opcua_points(resolved.profile),
        options,
        methods=methods,
        events=events,
    )
