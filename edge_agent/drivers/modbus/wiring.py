"""A configured Modbus device → its driver: the `modbus` entry of the runtime's protocol
registry (edge_agent/runtime/registry.py). The driver itself never sees the config models."""

from __future__ import annotations

from collections.abc import Mapping

from edge_agent.config import LoadedConfig, ModbusConnection, ModbusProfile, ResolvedDevice
from edge_agent.config.points import modbus_points
from edge_agent.drivers.modbus.driver import ModbusDriver
from edge_agent.drivers.modbus.endpoint import ModbusEndpoint, SerialLink, TcpLink
from edge_agent.errors import ConfigError, ConfigProblem

__all__ = ["modbus_driver", "modbus_endpoint"]


def modbus_endpoint(connection: ModbusConnection) -> ModbusEndpoint:
    """The driver's endpoint for a device's `modbus:` config section."""
    link: TcpLink | SerialLink
    if connection.host is not None:
        link = TcpLink(connection.host, connection.port)
    else:
        assert connection.serial is not None  # the config model requires host or serial
        link = SerialLink(
            connection.serial,
            baudrate=connection.baudrate,
            parity=connection.parity,
            stopbits=connection.stopbits,
            bytesize=connection.bytesize,
        )
    return ModbusEndpoint(link, unit=connection.unit, timeout_ms=connection.timeout_ms)


def modbus_driver(
    loaded: LoadedConfig, resolved: ResolvedDevice, _environ: Mapping[str, str]
) -> ModbusDriver:
    """The driver of one configured Modbus device."""
    machine = resolved.device.machine
    connection = resolved.device.modbus
    if connection is None or not isinstance(resolved.profile, ModbusProfile):
        raise ConfigError(
            [ConfigProblem(str(loaded.path), f"device {machine}", "is not a Modbus device")]
        )
    return ModbusDriver(machine, modbus_endpoint(connection), modbus_points(resolved.profile))
