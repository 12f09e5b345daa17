"""A configured EtherNet/IP device → its driver: the `enip` entry of the runtime's protocol
registry (edge_agent/runtime/registry.py). The driver itself never sees the config models."""

from __future__ import annotations

from collections.abc import Mapping

from edge_agent.config import LoadedConfig, ResolvedDevice
from edge_agent.config.enip_profile import EnipProfile
from edge_agent.config.points import enip_points
from edge_agent.drivers.enip.driver import EnipDriver, EnipEndpoint
from edge_agent.errors import ConfigError, ConfigProblem

__all__ = ["enip_driver"]


def enip_driver(
    loaded: LoadedConfig, resolved: ResolvedDevice, _environ: Mapping[str, str]
) -> EnipDriver:
    """The driver of one configured EtherNet/IP device."""
    machine = resolved.device.machine
    connection = resolved.device.enip
    if connection is None or not isinstance(resolved.profile, EnipProfile):
        raise ConfigError(
            [ConfigProblem(str(loaded.path), f"device {machine}", "is not an EtherNet/IP device")]
        )
    endpoint = EnipEndpoint(
        connection.host, port=connection.port, slot=connection.slot,
        timeout_ms=connection.timeout_ms,
    )  # fmt: skip
    return EnipDriver(machine, endpoint, enip_points(resolved.profile))
