"""A configured S7 device → its driver: the `s7` entry of the runtime's protocol registry
(edge_agent/runtime/registry.py). The driver itself never sees the config models."""

from __future__ import annotations

from collections.abc import Mapping

from edge_agent.config import LoadedConfig, ResolvedDevice
from edge_agent.config.points import s7_points
from edge_agent.config.s7_profile import S7Profile
from edge_agent.drivers.s7.driver import S7Driver, S7Endpoint
from edge_agent.errors import ConfigError, ConfigProblem

__all__ = ["s7_driver"]


def s7_driver(
    loaded: LoadedConfig, resolved: ResolvedDevice, _environ: Mapping[str, str]
) -> S7Driver:
    """The driver of one configured S7 device."""
    machine = resolved.device.machine
    connection = resolved.device.s7
    if connection is None or not isinstance(resolved.profile, S7Profile):
        raise ConfigError(
            [ConfigProblem(str(loaded.path), f"device {machine}", "is not an S7 device")]
        )
    endpoint = S7Endpoint(
        connection.host,
        port=connection.port,
        rack=connection.rack,
        slot=connection.slot,
        timeout_ms=connection.timeout_ms,
    )
    return S7Driver(machine, endpoint, s7_points(resolved.profile))
