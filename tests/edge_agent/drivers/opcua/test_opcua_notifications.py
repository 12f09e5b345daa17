"""The fast PublishResponse decoder reads what asyncua reads (opcua/notifications.py).

Responses are encoded by asyncua itself; the decoder's samples must equal those the driver built
from asyncua's decoding (`sample_from_datavalue`), whatever the mix of value types, status codes,
timestamps and handles. What it does not read (events, status changes) must come back None.
"""

from __future__ import annotations

import datetime as dt
import struct
from typing import Any, cast

from asyncua import ua
from asyncua.ua.ua_binary import struct_from_binary, struct_to_binary
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_agent.drivers.base import Sample
from edge_agent.drivers.opcua.notifications import decode_publish, ticks_to_ms
from edge_agent.drivers.opcua.samples import sample_from_datavalue

NOW_MS = 1_765_000_000_000
SUBSCRIPTION = 7
TAGS = {h: f"t{h}" for h in range(1, 40)}

_moments = st.datetimes(
    min_value=dt.datetime(1990, 1, 1), max_value=dt.datetime(2100, 1, 1), timezones=st.just(dt.UTC)
).map(lambda d: d.replace(microsecond=d.microsecond // 10 * 10))  # DateTime holds 100 ns ticks

_variants = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(
        lambda v: ua.Variant(v, ua.VariantType.Double)
    ),
    st.floats(width=32).map(lambda v: ua.Variant(v, ua.VariantType.Float)),
    st.booleans().map(lambda v: ua.Variant(v, ua.VariantType.Boolean)),
    st.integers(-(2**15), 2**15 - 1).map(lambda v: ua.Variant(v, ua.VariantType.Int16)),
    st.integers(0, 2**16 - 1).map(lambda v: ua.Variant(v, ua.VariantType.UInt16)),
    st.integers(-(2**31), 2**31 - 1).map(lambda v: ua.Variant(v, ua.VariantType.Int32)),
    st.integers(0, 2**32 - 1).map(lambda v: ua.Variant(v, ua.VariantType.UInt32)),
    st.integers(-(2**63), 2**63 - 1).map(lambda v: ua.Variant(v, ua.VariantType.Int64)),
    st.integers(0, 2**64 - 1).map(lambda v: ua.Variant(v, ua.VariantType.UInt64)),
    st.integers(0, 255).map(lambda v: ua.Variant(v, ua.VariantType.Byte)),
    st.integers(-128, 127).map(lambda v: ua.Variant(v, ua.VariantType.SByte)),
    st.text(max_size=300).map(lambda v: ua.Variant(v, ua.VariantType.String)),
    st.just(ua.Variant(None, ua.VariantType.String)),
    _moments.map(lambda v: ua.Variant(v, ua.VariantType.DateTime)),
    st.lists(st.integers(-100, 100), max_size=4).map(lambda v: ua.Variant(v, ua.VariantType.Int32)),
    st.text(max_size=20).map(
        lambda v: ua.Variant(ua.LocalizedText(v), ua.VariantType.LocalizedText)
    ),
    st.binary(max_size=20).map(lambda v: ua.Variant(v, ua.VariantType.ByteString)),
)
_statuses = st.sampled_from([None, 0, 0x00A20000, 0x40000000, 0x80340000, 0x808A0000])


def _when(moment: dt.datetime | None) -> ua.DateTime | None:
    return cast("ua.DateTime | None", moment)


@st.composite
def _data_values(draw: st.DrawFn) -> ua.DataValue:
    value = draw(st.none() | _variants)
    status = draw(_statuses)
    return ua.DataValue(
        Value=value,
        StatusCode=None if status is None else ua.StatusCode(ua.UInt32(status)),
        SourceTimestamp=_when(draw(st.none() | _moments)),
        ServerTimestamp=_when(draw(st.none() | _moments)),
        # No picoseconds: asyncua 2.1 writes them after both timestamps, where OPC 10000-6
        # §5.2.2.17 puts SourcePicoseconds before ServerTimestamp (test_picoseconds_*).
    )


def _response(notifications: list[Any], seq: int = 5) -> bytes:
    response = ua.PublishResponse()
    response.Parameters.SubscriptionId = SUBSCRIPTION
    response.Parameters.AvailableSequenceNumbers = [seq]
    response.Parameters.NotificationMessage.SequenceNumber = seq
    response.Parameters.NotificationMessage.NotificationData = notifications
    return struct_to_binary(response)


def _data_change(items: list[tuple[int, ua.DataValue]]) -> ua.DataChangeNotification:
    return ua.DataChangeNotification(
        MonitoredItems=[ua.MonitoredItemNotification(ClientHandle=h, Value=v) for h, v in items]
    )


def _as_asyncua_sees_it(raw: bytes) -> list[Sample]:
    response = struct_from_binary(ua.PublishResponse, _buffer(raw))
    out = []
    for notification in response.Parameters.NotificationMessage.NotificationData:
        for item in notification.MonitoredItems:
            if item.ClientHandle in TAGS:
                out.append(sample_from_datavalue(TAGS[item.ClientHandle], item.Value, NOW_MS))
    return out


def _buffer(raw: bytes) -> Any:
    from asyncua.common.utils import Buffer  # noqa: PLC0415

    return Buffer(raw)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.lists(st.tuples(st.sampled_from([*TAGS, 999]), _data_values()), min_size=0, max_size=12),
        min_size=0,
        max_size=3,
    )
)
def test_mixed_items_decode_as_asyncua_decodes_them(
    notifications: list[list[tuple[int, ua.DataValue]]],
) -> None:
    raw = _response([_data_change(items) for items in notifications])
    changes = decode_publish(raw, {SUBSCRIPTION: TAGS}, NOW_MS)
    assert changes is not None
    assert changes.subscription_id == SUBSCRIPTION
    assert changes.sequence_number == 5
    assert changes.notified == bool(notifications)
    assert changes.samples == _as_asyncua_sees_it(raw)
    assert len(changes.bad_statuses) == sum(s.quality == "bad" for s in changes.samples)
    assert all(status >> 31 for status in changes.bad_statuses)


@settings(max_examples=100, deadline=None)
@given(
    st.sampled_from([ua.VariantType.Double, ua.VariantType.Float, ua.VariantType.Int32]),
    st.lists(st.floats(-1e9, 1e9) | st.just(float("nan")), min_size=1, max_size=60),
    st.booleans(),
    st.booleans(),
    st.sampled_from([None, 0, 0x40000000, 0x80000000]),
)
def test_uniform_blocks_decode_as_asyncua_decodes_them(
    vtype: ua.VariantType,
    numbers: list[float],
    source: bool,
    server: bool,
    status: int | None,
) -> None:
    """The block path: every item of a notification in the same layout (as PLCs send)."""
    stamp = dt.datetime(2026, 12, 7, 14, 0, 0, 123450, tzinfo=dt.UTC)
    items = []
    for n, number in enumerate(numbers):
        value = int(number) if vtype == ua.VariantType.Int32 and number == number else number
        if vtype == ua.VariantType.Int32 and value != value:
            value = 0
        if vtype == ua.VariantType.Int32:
            value = max(-(2**31), min(2**31 - 1, int(value)))
        items.append(
            (
                (n % 39) + 1,
                ua.DataValue(
                    Value=ua.Variant(value, vtype),
                    StatusCode=None if status is None else ua.StatusCode(ua.UInt32(status)),
                    SourceTimestamp=_when(stamp + dt.timedelta(milliseconds=n) if source else None),
                    ServerTimestamp=_when(stamp if server else None),
                ),
            )
        )
    raw = _response([_data_change(items)])
    changes = decode_publish(raw, {SUBSCRIPTION: TAGS}, NOW_MS)
    assert changes is not None
    assert changes.samples == _as_asyncua_sees_it(raw)


def test_a_handle_it_does_not_know_is_skipped() -> None:
    value = ua.DataValue(Value=ua.Variant(1.5, ua.VariantType.Double))
    raw = _response([_data_change([(1, value), (12345, value), (2, value)])])
    changes = decode_publish(raw, {SUBSCRIPTION: TAGS}, NOW_MS)
    assert changes is not None
    assert changes.samples == [Sample("t1", NOW_MS, 1.5, "good"), Sample("t2", NOW_MS, 1.5, "good")]


def test_keep_alive_needs_no_acknowledgement() -> None:
    changes = decode_publish(_response([]), {SUBSCRIPTION: TAGS}, NOW_MS)
    assert changes is not None
    assert not changes.notified
    assert changes.samples == []


def test_what_it_does_not_read_is_left_to_asyncua() -> None:
    status = ua.StatusChangeNotification(Status=ua.StatusCode(ua.UInt32(ua.StatusCodes.BadTimeout)))
    assert decode_publish(_response([status]), {SUBSCRIPTION: TAGS}, NOW_MS) is None
    events = ua.EventNotificationList(Events=[ua.EventFieldList(ClientHandle=1, EventFields=[])])
    assert decode_publish(_response([events]), {SUBSCRIPTION: TAGS}, NOW_MS) is None
    # A subscription without data handles (the events subscription) too.
    assert decode_publish(_response([_data_change([])]), {}, NOW_MS) is None
    # And a response that is not a PublishResponse body at all.
    assert decode_publish(b"\x05\x00", {SUBSCRIPTION: TAGS}, NOW_MS) is None


def test_picoseconds_sit_where_the_standard_puts_them() -> None:
    """OPC 10000-6 §5.2.2.17: SourceTimestamp, SourcePicoseconds, ServerTimestamp,
    ServerPicoseconds (node-opcua and the .NET stack write this order)."""
    source = ua.datetime_to_win_epoch(dt.datetime(2026, 1, 2, 3, 4, 5, 6000, tzinfo=dt.UTC))
    server = source + 10_000 * 1000  # one second later
    value = struct.pack("<BBdqHqH", 0x3D, 11, 2.5, source, 7, server, 9)
    item = struct.pack("<I", 3) + value
    for items in ([item], [item, item]):  # one item by item, the other as a block
        raw = _response([_data_change([])])
        # Splice the hand-made items into an empty DataChangeNotification's body.
        empty = struct.pack("<ii", 0, 0)  # MonitoredItems count, DiagnosticInfos count
        body = struct.pack("<i", len(items)) + b"".join(items) + struct.pack("<i", 0)
        at = raw.rindex(struct.pack("<i", len(empty)) + empty)
        raw = raw[:at] + struct.pack("<i", len(body)) + body + raw[at + 4 + len(empty) :]
        changes = decode_publish(raw, {SUBSCRIPTION: TAGS}, NOW_MS)
        assert changes is not None
        assert changes.samples == [Sample("t3", ticks_to_ms(source), 2.5, "good")] * len(items)


def test_ticks_to_ms() -> None:
    assert ticks_to_ms(116_444_736_000_000_000) == 0
    moment = dt.datetime(2026, 12, 7, 14, 0, 0, 123456, tzinfo=dt.UTC)
    ticks = ua.datetime_to_win_epoch(moment)
    assert ticks_to_ms(ticks) == 1_796_652_000_123
