"""A value to write → the Variant of the node's own data type (pure).

OPC-UA servers refuse a Write whose Variant type differs from the variable's DataType
(BadTypeMismatch): 185 sent as Int64 to a Double setpoint fails. The built-in data types are
NodeIds ns=0;i=1..25 with the same numbers as `ua.VariantType`, which is what this relies on.
"""

from __future__ import annotations

from asyncua import ua

from edge_agent.drivers.base import Value
from edge_agent.drivers.writes import ValueKind
from edge_agent.errors import WriteRefused

__all__ = ["kind_of", "variant_for", "variant_type"]

_INT_RANGES: dict[ua.VariantType, tuple[int, int]] = {
    ua.VariantType.SByte: (-(2**7), 2**7 - 1),
    ua.VariantType.Byte: (0, 2**8 - 1),
    ua.VariantType.Int16: (-(2**15), 2**15 - 1),
    ua.VariantType.UInt16: (0, 2**16 - 1),
    ua.VariantType.Int32: (-(2**31), 2**31 - 1),
    ua.VariantType.UInt32: (0, 2**32 - 1),
    ua.VariantType.Int64: (-(2**63), 2**63 - 1),
    ua.VariantType.UInt64: (0, 2**64 - 1),
}
_FLOATS = frozenset({ua.VariantType.Float, ua.VariantType.Double})


def variant_type(tag: str, data_type: ua.NodeId) -> ua.VariantType:
    """The Variant type of a variable's DataType; `WriteRefused` for types not written yet."""
    if data_type.NamespaceIndex == 0 and isinstance(data_type.Identifier, int):
        try:
            vt = ua.VariantType(data_type.Identifier)
        except ValueError:
            vt = None
        if vt is not None and (vt in _INT_RANGES or vt in _FLOATS or vt in (
            ua.VariantType.Boolean, ua.VariantType.String
        )):  # fmt: skip
            return vt
    raise WriteRefused(
        f"{tag}: its node's data type {data_type.to_string()} cannot be written yet "
        "(numbers, booleans and strings can)"
    )


def kind_of(vt: ua.VariantType) -> ValueKind:
    """What kind of value a tag of this Variant type takes (for `check_write`)."""
    if vt == ua.VariantType.Boolean:
        return "bool"
    if vt == ua.VariantType.String:
        return "string"
    return "number"


def variant_for(tag: str, value: Value, vt: ua.VariantType) -> ua.Variant:
    """`value` (already checked for its kind) as a Variant of type `vt`."""
    if vt in _INT_RANGES:
        assert isinstance(value, int | float)
        if isinstance(value, float) and not value.is_integer():
            raise WriteRefused(f"{tag} is an integer ({vt.name}); {value!r} is not")
        low, high = _INT_RANGES[vt]
        if not low <= int(value) <= high:
            raise WriteRefused(f"{value!r} is outside {tag}'s type {vt.name} ({low}..{high})")
        return ua.Variant(int(value), vt)
    if vt in _FLOATS:
        assert isinstance(value, int | float)
        return ua.Variant(float(value), vt)
    return ua.Variant(value, vt)
