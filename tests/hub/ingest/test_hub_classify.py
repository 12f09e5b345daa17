"""classify (pure): routes by topic, maps wire's results, never raises on input."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

import wire
from hub.ingest.classify import classify, guess_seq, guess_src
from hub.ingest.message import Incoming
from hub.storage import (
    AgentStatusUpdate,
    DeadLetter,
    MachineMetaUpdate,
    MachineStatusUpdate,
    TelemetryBatch,
)

NOW = 1_763_900_000_000
M = NOW - NOW % 60_000  # a minute start


def msg(topic: str, payload: bytes) -> Incoming:
    return Incoming(topic=topic, payload=payload, qos=1, mid=1, received_at=NOW)


def test_telemetry_status_agent_and_dead_letters() -> None:
    reading = wire.Reading(tag="t", ts=NOW, v=1.0, q="good")
    t = classify(msg("ms/v1/s/l/m/telemetry", wire.encode_telemetry("src1", 4, [reading])))
    assert isinstance(t, TelemetryBatch)
    assert (t.site, t.line, t.machine, t.src, t.seq, len(t.readings)) == (
        "s",
        "l",
        "m",
        "src1",
        4,
        1,
    )
    s = classify(msg("ms/v1/s/l/m/status", wire.encode_status("faulted", NOW, "E1")))
    assert isinstance(s, MachineStatusUpdate)
    assert (s.state, s.ts, s.detail) == ("faulted", NOW, "E1")
    a = classify(msg("ms/v1/agents/ag/status", wire.encode_agent_status("online", NOW, dropped=2)))
    assert isinstance(a, AgentStatusUpdate)
    assert (a.agent_id, a.state, a.drops) == ("ag", "online", 2)
    assert classify(msg("ms/v1/s/l/m/status", b"")) is None
    d = classify(msg("ms/v1/s/l/m/telemetry", b'{"v":1,"src":"pub-7","seq":1,"readings":[{'))
    assert isinstance(d, DeadLetter)
    assert (d.reason, d.src, d.seq, d.received_at) == ("bad_json", "pub-7", 1, NOW)
    # A dead letter without a publisher, or on a status topic, is never receipted.
    d = classify(msg("ms/v1/s/l/m/telemetry", b'{"v":1,"seq":3,"readings":[]}'))
    assert isinstance(d, DeadLetter)
    assert (d.src, d.seq) == (None, None)
    d = classify(msg("ms/v1/s/l/m/status", b'{"src":"a","seq":3}'))
    assert isinstance(d, DeadLetter)
    assert d.seq is None


def test_agent_status_carries_site_line_and_production() -> None:
    payload = wire.encode_agent_status(
        "online",
        NOW,
        site="s",
        line="l",
        devices={
            "press": wire.DeviceStatus(produced=((M, 60), (M + 60_000, 12))),
            "oven": wire.DeviceStatus(online=True),
        },
    )
    a = classify(msg("ms/v1/agents/ag/status", payload))
    assert isinstance(a, AgentStatusUpdate)
    assert (a.site, a.line) == ("s", "l")
    assert list(a.produced) == [("press", M, 60), ("press", M + 60_000, 12)]
    assert tuple(a.devices) == ("oven", "press")  # the machines this agent polls
    # An older agent: no site/line, nothing produced; the dataclass defaults apply.
    old = classify(msg("ms/v1/agents/ag/status", wire.encode_agent_status("online", NOW)))
    assert isinstance(old, AgentStatusUpdate)
    assert (old.site, old.line, tuple(old.produced), tuple(old.devices)) == (None, None, (), ())


def test_meta_and_its_dead_letters() -> None:
    payload = wire.encode_meta(NOW, {"temp": wire.TagMeta(unit="°C", description="Oil")})
    m = classify(msg("ms/v1/s/l/m/meta", payload))
    assert isinstance(m, MachineMetaUpdate)
    assert (m.site, m.line, m.machine, m.ts) == ("s", "l", "m", NOW)
    assert list(m.tags) == [("temp", "°C", "Oil")]
    assert classify(msg("ms/v1/s/l/m/meta", b"")) is None  # a cleared retained meta
    d = classify(
        msg("ms/v1/s/l/m/meta", b'{"v":1,"ts":1,"tags":{"t":{"unit":"%s"}}}' % (b"x" * 33))
    )
    assert isinstance(d, DeadLetter)
    assert d.reason == "string_too_long"
    d = classify(msg("ms/v1/s/l/m/meta", b'{"v":1,"ts":1,"tags":{"t":{"units":"V"}}}'))
    assert isinstance(d, DeadLetter)
    assert (d.reason, d.seq) == ("bad_field", None)
    assert "tags.t.units" in d.message


def test_guess_seq_reads_a_plain_integer_only() -> None:
    assert guess_seq(b'{"seq": 1842, "src": "a"}') == 1842
    assert guess_seq(b'{"seq": "1842"}') is None
    assert guess_seq(b'{"seq": 1.5}') is None
    assert guess_seq(b'{"seq": -3}') is None


def test_guess_src_only_looks_at_the_start() -> None:
    assert guess_src(b'{"src": "a-1"}') == "a-1"
    assert guess_src(b" " * 5000 + b'{"src": "a-1"}') is None
    assert guess_src(b"\xff\xfe") is None


@given(
    st.sampled_from(["ms/v1/s/l/m/telemetry", "ms/v1/s/l/m/status", "ms/v1/agents/a/status"]),
    st.binary(max_size=300),
)
def test_arbitrary_bytes_never_raise(topic: str, payload: bytes) -> None:
    result = classify(msg(topic, payload))
    assert result is None or isinstance(
        result, DeadLetter | TelemetryBatch | MachineStatusUpdate | AgentStatusUpdate
    )
