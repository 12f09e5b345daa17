"""Modbus TCP and RTU acquisition: points, codec, read planner, deadband and the driver."""

from edge_agent.drivers.modbus.codec import (
    all_orders,
    decode_point,
    decode_registers,
    encode_point,
    encode_value,
    register_count,
)
from edge_agent.drivers.modbus.points import ModbusPoint, Order, PointType, Table

__all__ = [
    "ModbusPoint",
    "Order",
    "PointType",
    "Table",
    "all_orders",
    "decode_point",
    "decode_registers",
    "encode_point",
    "encode_value",
    "register_count",
]
