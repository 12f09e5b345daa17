"""Which driver serves which protocol: the one place a configured device becomes a driver.

`run`, `probe` and `browse` all build their drivers here. Adding a protocol is a folder under
`edge_agent/drivers/` (its driver, and a `wiring.py` from its config section to the driver) plus
one entry in `PROTOCOLS`. Entries import their driver when used: `validate` and `status` never
pay for pymodbus or asyncua.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping

from edge_agent.config import LoadedConfig, ResolvedDevice
from edge_agent.errors import ConfigError, ConfigProblem
from edge_agent.runtime.sources import Source

__all__ = ["PROTOCOLS", "build_driver", "build_sources", "find_device"]

Build = Callable[[LoadedConfig, ResolvedDevice, Mapping[str, str]], Source]


def _modbus(loaded: LoadedConfig, resolved: ResolvedDevice, environ: Mapping[str, str]) -> Source:
    from edge_agent.drivers.modbus.wiring import modbus_driver  # noqa: PLC0415 -- import cost

    return modbus_driver(loaded, resolved, environ)


def _opcua(loaded: LoadedConfig, resolved: ResolvedDevice, environ: Mapping[str, str]) -> Source:
    from edge_agent.drivers.opcua.wiring import opcua_driver  # noqa: PLC0415 -- import cost

    return opcua_driver(loaded, resolved, environ)


def _s7(loaded: LoadedConfig, resolved: ResolvedDevice, environ: Mapping[str, str]) -> Source:
    from edge_agent.drivers.s7.wiring import s7_driver  # noqa: PLC0415 -- import cost

    return s7_driver(loaded, resolved, environ)


def _enip(loaded: LoadedConfig, resolved: ResolvedDevice, environ: Mapping[str, str]) -> Source:
    from edge_agent.drivers.enip.wiring import enip_driver  # noqa: PLC0415 -- import cost

    return enip_driver(loaded, resolved, environ)


PROTOCOLS: dict[str, Build] = {"modbus": _modbus, "opcua": _opcua, "s7": _s7, "enip": _enip}


def find_device(loaded: LoadedConfig, machine: str) -> ResolvedDevice:
    """The configured device named `machine`; ConfigError naming the devices there are if none."""
    for resolved in loaded.devices:
        if resolved.device.machine == machine:
            return resolved
    names = ", ".join(d.device.machine for d in loaded.devices) or "none"
    raise ConfigError(
        [
            ConfigProblem(
                str(loaded.path),
                "devices",
                f"{machine} is not in the config",
                f"devices in this config: {names}",
            )
        ]
    )


def build_driver(
    loaded: LoadedConfig, machine: str, environ: Mapping[str, str] = os.environ
) -> Source:
    """The driver of one configured device; ConfigError when it cannot be built."""
    resolved = find_device(loaded, machine)
    return PROTOCOLS[resolved.device.protocol](loaded, resolved, environ)


def build_sources(
    loaded: LoadedConfig, environ: Mapping[str, str] = os.environ
) -> dict[str, Source]:
    """One driver per configured device, keyed by machine name."""
    return {
        d.device.machine: PROTOCOLS[d.device.protocol](loaded, d, environ) for d in loaded.devices
    }
