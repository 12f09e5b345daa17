"""The Sparkplug B payload schema (Eclipse Tahu `sparkplug_b.proto`, package
`org.eclipse.tahu.protobuf`), built from a descriptor at import.

Why not generated code: `_pb2.py` files are tied to the protobuf release that generated them
(the runtime refuses gencode newer than itself and warns on old), and protoc is a build tool the
line PC does not have. A descriptor written out here works with every protobuf runtime from 5.26
on, and the field numbers sit in one readable place.

Only what Millstream reads or writes is spelled out: DataSet, Template and MetaData are declared
as messages without fields, so their bytes parse (and are kept as unknown fields) but are never
interpreted — metrics carrying datasets or templates are refused by the codec with a reason.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

__all__ = ["Payload", "PropertySet", "PropertyValue"]

_F = descriptor_pb2.FieldDescriptorProto
_PACKAGE = "org.eclipse.tahu.protobuf"

# (name, number, type, label, message type name or None, oneof index or None)
_Field = tuple[str, int, int, int, str | None, int | None]
_OPT, _REP = _F.LABEL_OPTIONAL, _F.LABEL_REPEATED


def _message(
    name: str,
    fields: list[_Field],
    nested: Sequence[descriptor_pb2.DescriptorProto] = (),
    oneofs: Sequence[str] = (),
) -> descriptor_pb2.DescriptorProto:
    msg = descriptor_pb2.DescriptorProto(name=name)
    for oneof in oneofs:
        msg.oneof_decl.add(name=oneof)
    for fname, number, ftype, label, type_name, oneof_index in fields:
        field = msg.field.add(name=fname, number=number, type=ftype, label=label)
        if type_name is not None:
            field.type_name = f".{_PACKAGE}.{type_name}"
        if oneof_index is not None:
            field.oneof_index = oneof_index
    msg.nested_type.extend(nested)
    return msg


def _schema() -> descriptor_pb2.FileDescriptorProto:
    property_value = _message(
        "PropertyValue",
        [
            ("type", 1, _F.TYPE_UINT32, _OPT, None, None),
            ("is_null", 2, _F.TYPE_BOOL, _OPT, None, None),
            ("int_value", 3, _F.TYPE_UINT32, _OPT, None, 0),
            ("long_value", 4, _F.TYPE_UINT64, _OPT, None, 0),
            ("float_value", 5, _F.TYPE_FLOAT, _OPT, None, 0),
            ("double_value", 6, _F.TYPE_DOUBLE, _OPT, None, 0),
            ("boolean_value", 7, _F.TYPE_BOOL, _OPT, None, 0),
            ("string_value", 8, _F.TYPE_STRING, _OPT, None, 0),
        ],
        oneofs=["value"],
    )
    property_set = _message(
        "PropertySet",
        [
            ("keys", 1, _F.TYPE_STRING, _REP, None, None),
            ("values", 2, _F.TYPE_MESSAGE, _REP, "Payload.PropertyValue", None),
        ],
    )
    metric = _message(
        "Metric",
        [
            ("name", 1, _F.TYPE_STRING, _OPT, None, None),
            ("alias", 2, _F.TYPE_UINT64, _OPT, None, None),
            ("timestamp", 3, _F.TYPE_UINT64, _OPT, None, None),
            ("datatype", 4, _F.TYPE_UINT32, _OPT, None, None),
            ("is_historical", 5, _F.TYPE_BOOL, _OPT, None, None),
            ("is_transient", 6, _F.TYPE_BOOL, _OPT, None, None),
            ("is_null", 7, _F.TYPE_BOOL, _OPT, None, None),
            ("metadata", 8, _F.TYPE_MESSAGE, _OPT, "Payload.MetaData", None),
            ("properties", 9, _F.TYPE_MESSAGE, _OPT, "Payload.PropertySet", None),
            ("int_value", 10, _F.TYPE_UINT32, _OPT, None, 0),
            ("long_value", 11, _F.TYPE_UINT64, _OPT, None, 0),
            ("float_value", 12, _F.TYPE_FLOAT, _OPT, None, 0),
            ("double_value", 13, _F.TYPE_DOUBLE, _OPT, None, 0),
            ("boolean_value", 14, _F.TYPE_BOOL, _OPT, None, 0),
            ("string_value", 15, _F.TYPE_STRING, _OPT, None, 0),
            ("bytes_value", 16, _F.TYPE_BYTES, _OPT, None, 0),
            ("dataset_value", 17, _F.TYPE_MESSAGE, _OPT, "Payload.DataSet", 0),
            ("template_value", 18, _F.TYPE_MESSAGE, _OPT, "Payload.Template", 0),
        ],
        oneofs=["value"],
    )
    payload = _message(
        "Payload",
        [
            ("timestamp", 1, _F.TYPE_UINT64, _OPT, None, None),
            ("metrics", 2, _F.TYPE_MESSAGE, _REP, "Payload.Metric", None),
            ("seq", 3, _F.TYPE_UINT64, _OPT, None, None),
            ("uuid", 4, _F.TYPE_STRING, _OPT, None, None),
            ("body", 5, _F.TYPE_BYTES, _OPT, None, None),
        ],
        nested=[
            metric,
            property_value,
            property_set,
            _message("MetaData", []),
            _message("DataSet", []),
            _message("Template", []),
        ],
    )
    return descriptor_pb2.FileDescriptorProto(
        name="millstream/sparkplug_b.proto",
        package=_PACKAGE,
        syntax="proto2",
        message_type=[payload],
    )


def _classes() -> tuple[Any, Any, Any]:
    # A pool of our own: the default pool may already hold another copy of the Tahu schema
    # (a user's own generated code in the same process) and would refuse a second definition.
    pool = descriptor_pool.DescriptorPool()
    pool.Add(_schema())
    get = message_factory.GetMessageClass
    return (
        get(pool.FindMessageTypeByName(f"{_PACKAGE}.Payload")),
        get(pool.FindMessageTypeByName(f"{_PACKAGE}.Payload.PropertySet")),
        get(pool.FindMessageTypeByName(f"{_PACKAGE}.Payload.PropertyValue")),
    )


Payload, PropertySet, PropertyValue = _classes()
