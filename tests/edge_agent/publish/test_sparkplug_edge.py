"""The agent's Sparkplug edge node state (pure): bdSeq, births, seq, STATE, rebirth requests."""

from __future__ import annotations

import json

import pytest

import wire
from edge_agent.publish.sparkplug import SparkplugEdge
from wire import sparkplug as spb

T = 1_800_000_000.0


def _edge(host: str | None = "h") -> SparkplugEdge:
    return SparkplugEdge(
        "pc-1", "site", "l1", host_id=host, tags={"m": ["a", "b"]}, clock=lambda: T
    )


def _batch(*values: object) -> bytes:
    readings = [wire.Reading(tag="a", ts=1_700_000_000_000 + i, v=v) for i, v in enumerate(values)]
    return wire.encode_telemetry("pc-1", 1, readings)


@pytest.mark.asyncio
async def test_births_carry_the_wills_bdseq_and_declare_every_tag() -> None:
    edge = _edge(None)
    topic, will = edge.will()
    assert topic == "spBv1.0/site/NDEATH/l1"
    bd = spb.decode(will).metrics[0].value
    (nt, nbirth), (dt, dbirth) = edge.births()
    assert (nt, dt) == ("spBv1.0/site/NBIRTH/l1", "spBv1.0/site/DBIRTH/l1/m")
    node = spb.decode(nbirth)
    assert node.seq == 0
    assert [(m.name, m.value) for m in node.metrics] == [
        ("bdSeq", bd),
        ("Node Control/Rebirth", False),
    ]
    device = spb.decode(dbirth)
    assert device.seq == 1
    assert [(m.name, m.alias, m.is_null) for m in device.metrics] == [
        ("a", 1, True),
        ("b", 2, True),
    ]
    assert edge.clear_to_send.is_set()
    _, again = edge.will()  # the next connection: a new bdSeq
    assert spb.decode(again).metrics[0].value == (bd + 1) % 256


@pytest.mark.asyncio
async def test_data_runs_the_seq_by_alias_and_a_new_type_asks_for_a_rebirth() -> None:
    edge = _edge(None)
    edge.births()
    topic, data = edge.frame("m", _batch(1.5, 2.5), 7, live=True)
    got = spb.decode(data)
    assert topic == "spBv1.0/site/DDATA/l1/m"
    assert (got.seq, got.uuid) == (2, "ms:pc-1:7")
    assert [(m.name, m.alias, m.value, m.is_historical) for m in got.metrics] == [
        (None, 1, 1.5, False),
        (None, 1, 2.5, False),
    ]
    assert not edge.rebirth.is_set()  # declared as a number, and a number came
    edge.frame("m", _batch("text"), 8, live=False)
    assert edge.rebirth.is_set()
    assert not edge.clear_to_send.is_set()  # no data before the new births
    _, dbirth = edge.births()[1]
    assert spb.decode(dbirth).metrics[0].datatype == spb.DATATYPES["String"]


@pytest.mark.asyncio
async def test_the_hosts_state_pauses_and_resumes_and_old_certificates_are_ignored() -> None:
    edge = _edge("h")
    assert not edge.host_online.is_set()
    edge.handle("spBv1.0/STATE/h", json.dumps({"online": True, "timestamp": 10}).encode())
    assert edge.host_online.is_set()
    assert edge.rebirth.is_set()  # births first, then data
    edge.births()
    edge.handle("spBv1.0/STATE/h", json.dumps({"online": False, "timestamp": 5}).encode())
    assert edge.host_online.is_set()  # an older death certificate arriving late
    edge.handle("spBv1.0/STATE/h", json.dumps({"online": False, "timestamp": 10}).encode())
    assert not edge.host_online.is_set()
    assert not edge.clear_to_send.is_set()
    assert not edge.handle("spBv1.0/STATE/other", b"{}")


@pytest.mark.asyncio
async def test_a_rebirth_request_is_honoured() -> None:
    edge = _edge(None)
    edge.births()
    ask = spb.encode(
        spb.SpbPayload(1, None, [spb.SpbMetric("Node Control/Rebirth", None, None, 11, True)])
    )
    assert edge.handle("spBv1.0/site/NCMD/l1", ask)
    assert edge.rebirth.is_set()
    assert edge.handle("spBv1.0/site/NCMD/l1", b"\xff")  # unreadable: ignored, not a crash
