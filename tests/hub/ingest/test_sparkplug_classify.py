"""The hub's Sparkplug host state machine (pure): aliases, seq gaps, deaths, history, refusals."""

from __future__ import annotations

import time

import wire
from edge_agent.publish.sparkplug import SparkplugEdge
from hub.ingest.classify import parts
from hub.ingest.message import Incoming
from hub.ingest.sparkplug import SparkplugIngest
from hub.storage import (
    CompactReading,
    DeadLetter,
    MachineStatusUpdate,
    SparkplugBirth,
    TelemetryBatch,
)
from wire import sparkplug as spb

NOW = int(time.time() * 1000)


class Host:
    def __init__(self, births: tuple[SparkplugBirth, ...] = ()) -> None:
        self.asked: list[tuple[str, str]] = []
        self.clock = 0.0
        self.ingest = SparkplugIngest(
            spb.SpbNaming(),
            lambda g, n: self.asked.append((g, n)),
            births=births,
            rebirth_interval_s=5.0,
            clock=lambda: self.clock,
        )

    def send(self, topic: str, seq: int | None, *metrics: spb.SpbMetric) -> list[object]:
        payload = spb.encode(spb.SpbPayload(NOW, seq, list(metrics)))
        return list(parts(self.ingest.classify(Incoming(topic, payload, 1, 1, NOW))))


def m(name: str | None, alias: int | None, value: object, **kw: object) -> spb.SpbMetric:
    return spb.SpbMetric(name, alias, kw.pop("ts", NOW), kw.pop("datatype", None), value, **kw)  # type: ignore[arg-type]


def _born(host: Host) -> None:
    host.send("spBv1.0/g/NBIRTH/n", 0, m("bdSeq", None, 3), m("Node Control/Rebirth", 1, False))
    host.send("spBv1.0/g/DBIRTH/n/d", 1, m("Oil/Temp", 10, 1.0), m("Mode", 11, "auto"))


def test_a_birth_is_status_readings_and_the_aliases() -> None:
    host = Host()
    out = host.send("spBv1.0/g/DBIRTH/n/d", 0, m("Oil/Temp", 10, 1.5), m("Mode", 11, "auto"))
    birth = next(p for p in out if isinstance(p, SparkplugBirth))
    assert birth.metrics == (("Oil/Temp", 10, 10), ("Mode", 11, 12))
    status = next(p for p in out if isinstance(p, MachineStatusUpdate))
    assert (status.site, status.line, status.machine, status.state) == ("g", "n", "d", "online")
    batch = next(p for p in out if isinstance(p, TelemetryBatch))
    assert [(r.tag, r.v) for r in batch.readings] == [("Oil.Temp", 1.5), ("Mode", "auto")]
    assert not batch.receipt
    assert batch.live


def test_data_by_alias_resolves_and_history_is_not_live() -> None:
    host = Host()
    _born(host)
    out = host.send(
        "spBv1.0/g/DDATA/n/d", 2, m(None, 10, 2.0), m(None, 11, "x", is_historical=True)
    )
    live, history = [p for p in out if isinstance(p, TelemetryBatch)]
    assert [(r.tag, r.v) for r in live.readings] == [("Oil.Temp", 2.0)]
    assert live.live
    assert [(r.tag, r.v) for r in history.readings] == [("Mode", "x")]
    assert not history.live
    assert host.asked == []


def test_births_loaded_at_start_resolve_redelivered_data() -> None:
    loaded = (SparkplugBirth("g", "n", "d", None, (("Oil/Temp", 10, 10),), NOW),)
    host = Host(loaded)
    (batch,) = host.send("spBv1.0/g/DDATA/n/d", 9, m(None, 10, 4.0))
    assert isinstance(batch, TelemetryBatch)
    assert batch.readings[0].tag == "Oil.Temp"
    assert host.asked == []  # no seq known yet after a restart: no gap either


def test_an_unknown_alias_is_set_aside_and_asks_for_a_rebirth_once_per_interval() -> None:
    host = Host()
    _born(host)
    out = host.send("spBv1.0/g/DDATA/n/d", 2, m(None, 10, 2.0), m(None, 99, 7.0))
    (batch,) = [p for p in out if isinstance(p, TelemetryBatch)]
    assert [r.v for r in batch.readings] == [2.0]
    assert batch.refused is not None
    assert batch.refused.reason == "unknown_alias"
    assert b'"alias":99' in batch.refused.payload
    host.send("spBv1.0/g/DDATA/n/d", 3, m(None, 98, 1.0))
    assert host.asked == [("g", "n")]  # the second within the interval is not asked again
    host.clock += 6
    host.send("spBv1.0/g/DDATA/n/d", 4, m(None, 97, 1.0))
    assert host.asked == [("g", "n"), ("g", "n")]


def test_a_seq_gap_asks_for_a_rebirth_and_seq_wraps_at_255() -> None:
    host = Host()
    _born(host)
    for seq in range(2, 256):
        host.send("spBv1.0/g/DDATA/n/d", seq, m(None, 10, 1.0))
    host.send("spBv1.0/g/DDATA/n/d", 0, m(None, 10, 1.0))  # 255 → 0 is not a gap
    assert host.asked == []
    host.send("spBv1.0/g/DDATA/n/d", 3, m(None, 10, 1.0))
    assert host.asked == [("g", "n")]


def test_a_node_death_takes_its_devices_offline_unless_it_is_stale() -> None:
    host = Host()
    _born(host)
    stale = host.send("spBv1.0/g/NDEATH/n", None, m("bdSeq", None, 2))
    assert [p.reason for p in stale if isinstance(p, DeadLetter)] == ["bad_field"]
    out = host.send("spBv1.0/g/NDEATH/n", None, m("bdSeq", None, 3))
    # The node itself has no machine of its own (only control metrics): just the device.
    assert [(p.machine, p.state) for p in out if isinstance(p, MachineStatusUpdate)] == [
        ("d", "offline")
    ]


def test_refusals_name_the_metric_and_keep_the_rest() -> None:
    host = Host()
    _born(host)
    out = host.send(
        "spBv1.0/g/DDATA/n/d", 2,
        m("ok", None, 1.0),
        m("nul", None, "a\x00b"),
        m("old", None, 1.0, ts=NOW - 40 * 86_400_000),
        m("null", None, None, is_null=True, datatype=10),
    )  # fmt: skip
    (batch,) = [p for p in out if isinstance(p, TelemetryBatch)]
    assert [r.tag for r in batch.readings] == ["ok"]  # a null is no value: nothing stored
    assert batch.refused is not None
    assert "2 of 4 metrics refused" in batch.refused.message
    assert "metrics[1]" in batch.refused.message
    assert "metrics[2]" in batch.refused.message


def test_garbage_and_commands_are_handled() -> None:
    host = Host()
    (dead,) = parts(host.ingest.classify(Incoming("spBv1.0/g/DDATA/n/d", b"\xff", 1, 1, NOW)))
    assert isinstance(dead, DeadLetter)
    assert dead.reason == "bad_protobuf"
    assert dead.seq is None  # nothing is receipted to a Sparkplug node
    assert host.ingest.classify(Incoming("spBv1.0/g/NCMD/n", b"", 1, 1, NOW)) is None


def test_an_agent_batch_framed_as_sparkplug_is_receipted_by_its_own_digest() -> None:
    edge = SparkplugEdge("pc-1", "g", "n", host_id=None, tags={"d": ["temp"]})
    edge.will()
    births = edge.births()
    readings = [
        CompactReading("temp", NOW, 21.5, "good"),
        CompactReading("count", NOW, 7, "uncertain"),
        CompactReading("mode", NOW - 1, "auto", "bad"),
        CompactReading("run", NOW - 2, True, "good"),
    ]
    stored = wire.encode_telemetry("pc-1", 41, readings)  # as the agent's buffer keeps it
    host = Host()
    for topic, payload in births:
        host.ingest.classify(Incoming(topic, payload, 1, 1, NOW))
    topic, payload = edge.frame("d", stored, 41, live=False)
    out = list(parts(host.ingest.classify(Incoming(topic, payload, 1, 1, NOW))))
    (batch,) = [p for p in out if isinstance(p, TelemetryBatch)]
    assert (batch.src, batch.seq, batch.receipt) == ("pc-1", 41, True)
    assert batch.digest == wire.batch_digest(stored)  # what the agent's buffer deletes by
    assert not batch.live  # from the backlog: history
    assert [(r.tag, r.v, r.q) for r in batch.readings] == [(r.tag, r.v, r.q) for r in readings]
    # A forged claim to the same batch gets a receipt for its own content only.
    other = wire.encode_telemetry("pc-1", 41, [CompactReading("temp", NOW, 0.0, "good")])
    topic, payload = edge.frame("d", other, 41, live=True)
    (forged,) = [
        p
        for p in parts(host.ingest.classify(Incoming(topic, payload, 1, 1, NOW)))
        if isinstance(p, TelemetryBatch)
    ]
    assert forged.digest != wire.batch_digest(stored)
    assert host.asked == []  # births came first; seq ran without a gap
