"""Sparkplug B codec, topics and naming (pure). Interop with Tahu's own encoder is proved by
tests/hub/ingest/test_sparkplug_interop.py; these pin the edges one by one."""

from __future__ import annotations

import zlib

import pytest

import wire
from wire import sparkplug as spb
from wire.sparkplug.schema import Payload


def _one(**fields: object) -> bytes:
    msg = Payload()
    m = msg.metrics.add()
    for key, value in fields.items():
        setattr(m, key, value)
    return bytes(msg.SerializeToString())


@pytest.mark.parametrize(
    ("datatype", "field", "raw", "value"),
    [
        (1, "int_value", 0xFFFF_FFFB, -5),  # Int8 as Tahu writes it: two's complement in 32 bits
        (2, "int_value", 0xFFFF_8000, -32768),
        (3, "int_value", 0x8000_0000, -(2**31)),
        (4, "long_value", 2**64 - 1, -1),
        (5, "int_value", 255, 255),
        (7, "int_value", 0xFFFF_FFFF, 0xFFFF_FFFF),
        (8, "long_value", 2**63, 2**63),
        (13, "long_value", 1_700_000_000_000, 1_700_000_000_000),  # DateTime: epoch ms
        (9, "float_value", 1.5, 1.5),
        (10, "double_value", -2.25, -2.25),
        (11, "boolean_value", True, True),
        (12, "string_value", "auto", "auto"),
    ],
)
def test_values_decode_by_their_declared_type(
    datatype: int, field: str, raw: object, value: object
) -> None:
    got = spb.decode(_one(name="x", datatype=datatype, **{field: raw})).metrics[0]
    assert got.value == value
    assert type(got.value) is type(value)
    assert got.refused is None


@pytest.mark.parametrize(
    ("fields", "says"),
    [
        ({"datatype": 17, "bytes_value": b"\x00"}, "Bytes"),
        ({"datatype": 22, "bytes_value": b"\x00"}, "array"),
        ({"datatype": 16}, "DataSet"),
        ({"datatype": 19}, "Template"),
        ({"datatype": 10, "double_value": float("nan")}, "finite"),
    ],
)
def test_values_millstream_cannot_hold_are_refused_with_a_reason(
    fields: dict[str, object], says: str
) -> None:
    got = spb.decode(_one(name="x", **fields)).metrics[0]
    assert got.value is None
    assert got.refused is not None
    assert says in got.refused


def test_quality_null_history_and_round_trip() -> None:
    sent = spb.SpbPayload(
        timestamp=5,
        seq=7,
        metrics=[
            spb.SpbMetric("a/b", 1, 10, None, 2.5, quality="bad"),
            spb.SpbMetric("c", 2, 11, None, "x", is_historical=True),
            spb.SpbMetric("d", 3, 12, 10, None, is_null=True),
            spb.SpbMetric("e", None, None, None, -3),
            spb.SpbMetric("f", None, None, None, True, quality="uncertain"),
        ],
    )
    got = spb.decode(spb.encode(sent))
    assert (got.timestamp, got.seq) == (5, 7)
    assert [m.value for m in got.metrics] == [2.5, "x", None, -3, True]
    assert [m.quality for m in got.metrics] == ["bad", "good", "good", "good", "uncertain"]
    assert [m.is_historical for m in got.metrics] == [False, True, False, False, False]
    assert got.metrics[2].is_null
    assert got.metrics[3].datatype == spb.DATATYPES["Int64"]


@pytest.mark.parametrize("data", [b"\xff\xff\xff", b"\x12\x05\x0a\x03ab", b"\x08"])
def test_broken_protobuf_is_a_payload_error(data: bytes) -> None:
    with pytest.raises(wire.PayloadError) as caught:
        spb.decode(data)
    assert caught.value.reason == "bad_protobuf"


def test_topics_parse_and_refuse() -> None:
    assert spb.parse_topic("spBv1.0/G/DDATA/N/D") == spb.SpbTopic("G", "DDATA", "N", "D")
    assert spb.parse_topic("spBv1.0/G/NBIRTH/N") == spb.SpbTopic("G", "NBIRTH", "N", None)
    for bad in (
        "spBv1.0/G/DDATA/N",  # a device message without a device
        "spBv1.0/G/NDATA/N/D",  # a node message with one
        "spBv1.0/G/STATE/N",
        "spBv1.0//NDATA/N",
        "ms/v1/a/b/c/telemetry",
    ):
        with pytest.raises(wire.PayloadError) as caught:
            spb.parse_topic(bad)
        assert caught.value.reason == "bad_topic", bad


def test_names_become_segments_and_tags() -> None:
    assert spb.tag_name("Motor/Speed rpm") == "Motor.Speed_rpm"
    assert spb.tag_name("Ölstand%") == "_lstand_"
    assert len(spb.tag_name("x" * 300)) == 128
    naming = spb.SpbNaming()
    assert naming.machine_of("Plant A", "line.1", None) == ("Plant_A", "line_1", "line_1")
    assert naming.machine_of("g", "n", "press 1") == ("g", "n", "press_1")
    flat = spb.SpbNaming(site="plant", line="{group}", machine="{node}-{device}")
    assert flat.machine_of("g", "n", "d") == ("plant", "g", "n-d")
    with pytest.raises(wire.PayloadError):
        naming.machine_of("receipts", "n", "d")  # a reserved site


def _compressed(inner: bytes, algorithm: str | None, wbits: int) -> bytes:
    packer = zlib.compressobj(wbits=wbits)
    msg = Payload()
    msg.uuid = "SPBV1.0_COMPRESSED"
    msg.body = packer.compress(inner) + packer.flush()
    if algorithm is not None:
        m = msg.metrics.add()
        m.name, m.datatype, m.string_value = "algorithm", 12, algorithm
    return bytes(msg.SerializeToString())


def test_compressed_payloads_inflate_within_the_size_limit() -> None:
    inner = spb.encode(spb.SpbPayload(1, 4, [spb.SpbMetric("t", 1, 2, None, 1.5)]))
    for algorithm, wbits in ((None, 15), ("DEFLATE", 15), ("GZIP", 31)):
        got = spb.decode(_compressed(inner, algorithm, wbits))
        assert (got.seq, got.metrics[0].value) == (4, 1.5), algorithm
    bomb = _compressed(b"\x00" * (8 << 20), "DEFLATE", 15)
    assert len(bomb) < 20_000
    with pytest.raises(wire.PayloadError) as caught:
        spb.decode(bomb)
    assert caught.value.reason == "too_large"
    with pytest.raises(wire.PayloadError) as caught:
        spb.decode(_compressed(inner, "LZ4", 15))
    assert caught.value.reason == "unsupported_value"
