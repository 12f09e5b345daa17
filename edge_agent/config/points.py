"""Profile tags → the driver's plain `ModbusPoint`s, with profile defaults filled in."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from edge_agent.config.enip_profile import EnipProfile
from edge_agent.config.modbus_profile import ModbusProfile, ModbusTag
from edge_agent.config.opcua_profile import OpcUaProfile, OpcUaTag
from edge_agent.config.polled_profile import PolledDefaults, PolledTag
from edge_agent.config.s7_profile import S7Profile
from edge_agent.drivers.modbus.points import ModbusPoint
from edge_agent.drivers.opcua.points import Deadband, OpcuaPoint
from edge_agent.drivers.s7.address import MAX_STRING

if TYPE_CHECKING:
    from edge_agent.drivers.enip.driver import EnipPoint
    from edge_agent.drivers.s7.driver import S7Point

__all__ = [
    "enip_points",
    "modbus_point",
    "modbus_points",
    "opcua_point",
    "opcua_points",
    "s7_points",
]


def _ms(duration: timedelta) -> int:
    return round(duration.total_seconds() * 1000)


def modbus_point(tag: ModbusTag, profile: ModbusProfile) -> ModbusPoint:
    """Return the driver's view of one validated tag."""
    return ModbusPoint(
        name=tag.name,
        table=tag.table,
        address=tag.wire_address,
        type=tag.type,
        # The driver reads `length` for strings only; numeric spans follow from the type.
        length=tag.length if tag.type == "string" else None,
        order=tag.order or profile.defaults.order,
        bit=tag.bit,
        scale=tag.scale,
        offset=tag.offset,
        deadband=tag.deadband,
        poll_ms=tag.poll_ms or profile.defaults.poll_ms,
        max_interval_ms=_ms(tag.max_interval or profile.defaults.max_interval),
        unit=tag.unit or None,
        writable=tag.writable,
        min=tag.min,
        max=tag.max,
    )


def modbus_points(profile: ModbusProfile) -> list[ModbusPoint]:
    """Return one point per tag of `profile`, in profile order."""
    return [modbus_point(tag, profile) for tag in profile.tags]


def opcua_point(tag: OpcUaTag, profile: OpcUaProfile) -> OpcuaPoint:
    """Return the OPC-UA driver's view of one validated tag."""
    return OpcuaPoint(
        tag=tag.name,
        node=tag.node,
        browse_path=tag.browse_path,
        mode=tag.mode or profile.defaults.mode,
        sampling_ms=profile.defaults.sampling_ms if tag.sampling_ms is None else tag.sampling_ms,
        deadband=Deadband(tag.deadband.kind, tag.deadband.value) if tag.deadband else None,
        max_interval_ms=_ms(tag.max_interval or profile.defaults.max_interval),
        unit=tag.unit or None,
        writable=tag.writable,
        min=tag.min,
        max=tag.max,
    )


def opcua_points(profile: OpcUaProfile) -> list[OpcuaPoint]:
    """Return one OPC-UA point per tag of `profile`, in profile order."""
    return [opcua_point(tag, profile) for tag in profile.tags]


def _polled(tag: PolledTag, defaults: PolledDefaults) -> dict[str, Any]:
    """The point fields every polled PLC protocol's tag has, defaults filled in."""
    return {
        "name": tag.name,
        "scale": tag.scale,
        "offset": tag.offset,
        "deadband": tag.deadband,
        "poll_ms": tag.poll_ms or defaults.poll_ms,
        "max_interval_ms": _ms(tag.max_interval or defaults.max_interval),
        "unit": tag.unit or None,
        "writable": tag.writable,
        "min": tag.min,
        "max": tag.max,
    }


def s7_points(profile: S7Profile) -> list[S7Point]:
    """Return one S7 point per tag of `profile`, in profile order."""
    from edge_agent.drivers.s7.driver import S7Point  # noqa: PLC0415 -- imports snap7

    return [
        S7Point(
            address=tag.parsed,
            type=tag.type,
            length=tag.length or MAX_STRING,
            **_polled(tag, profile.defaults),
        )
        for tag in profile.tags
    ]


def enip_points(profile: EnipProfile) -> list[EnipPoint]:
    """Return one EtherNet/IP point per tag of `profile`, in profile order."""
    from edge_agent.drivers.enip.driver import EnipPoint  # noqa: PLC0415 -- imports pylogix

    return [
        EnipPoint(
            tag=tag.tag,
            type=tag.type,
            **_polled(tag, profile.defaults),
        )
        for tag in profile.tags
    ]
