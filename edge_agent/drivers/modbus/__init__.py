"""Modbus TCP and RTU acquisition: points, codec, read planner, deadband, bus and the driver."""

from edge_agent.drivers.deadband import DeadbandFilter, exceeds_deadband
from edge_agent.drivers.modbus.bus import BusPool, ModbusBus, RequestRejected
from edge_agent.drivers.modbus.codec import (
    all_orders,
    decode_point,
    decode_registers,
    encode_point,
    encode_value,
    implausibility,
    register_count,
    scale_value,
    set_bit,
)
from edge_agent.drivers.modbus.driver import ModbusDriver, PointReading
from edge_agent.drivers.modbus.endpoint import ModbusEndpoint, SerialLink, TcpLink
from edge_agent.drivers.modbus.planner import Learned, ReadRequest, plan_reads, split_request
from edge_agent.drivers.modbus.points import ModbusPoint, Order, PointType, Table

__all__ = [
    "BusPool",
    "DeadbandFilter",
    "Learned",
    "ModbusBus",
    "ModbusDriver",
    "ModbusEndpoint",
    "ModbusPoint",
    "Order",
    "PointReading",
    "PointType",
    "ReadRequest",
    "RequestRejected",
    "SerialLink",
    "Table",
    "TcpLink",
    "all_orders",
    "decode_point",
    "decode_registers",
    "encode_point",
    "encode_value",
    "exceeds_deadband",
    "implausibility",
    "plan_reads",
    "register_count",
    "scale_value",
    "set_bit",
    "split_request",
]
