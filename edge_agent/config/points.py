"""Profile tags → the driver's plain `ModbusPoint`s, with profile defaults filled in."""

from __future__ import annotations

from edge_agent.config.modbus_profile import ModbusProfile, ModbusTag
from edge_agent.drivers.modbus.points import ModbusPoint

__all__ = ["modbus_point", "modbus_points"]


def modbus_point(tag: ModbusTag, profile: ModbusProfile) -> ModbusPoint:
    """Return the driver's view of one validated tag."""
    return ModbusPoint(
        name=tag.name,
        table=tag.table,
        address=tag.address,
        type=tag.type,
        # The driver reads `length` for strings only; numeric spans follow from the type.
        length=tag.length if tag.type == "string" else None,
        order=tag.order or profile.defaults.order,
        bit=tag.bit,
        scale=tag.scale,
        offset=tag.offset,
        deadband=tag.deadband,
        poll_ms=tag.poll_ms or profile.defaults.poll_ms,
        unit=tag.unit or None,
    )


def modbus_points(profile: ModbusProfile) -> list[ModbusPoint]:
    """Return one point per tag of `profile`, in profile order."""
    return [modbus_point(tag, profile) for tag in profile.tags]
