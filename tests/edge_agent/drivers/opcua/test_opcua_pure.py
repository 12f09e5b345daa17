"""The pure core of the OPC-UA driver: no sockets, no clock."""

from __future__ import annotations

import asyncio
import datetime as dt
import math
from pathlib import Path
from types import SimpleNamespace

import pytest
from hypothesis import given
from hypothesis import strategies as st

import wire as wire_contract
from edge_agent.drivers.opcua.browse_path import format_browse_path, parse_browse_path
from edge_agent.drivers.opcua.certs import first_certificate, thumbprints
from edge_agent.drivers.opcua.points import OpcuaPoint
from edge_agent.drivers.opcua.quality import quality_of
from edge_agent.drivers.opcua.samples import sample_from_datavalue
from edge_agent.drivers.opcua.security import SecuritySpec, parse_security
from edge_agent.drivers.opcua.trust import PinDecision, PinStore, decide
from edge_agent.drivers.opcua.values import epoch_ms, wire_value
from edge_agent.drivers.opcua.watchdog import StaleWatchdog


@pytest.mark.parametrize(
    ("status", "quality"),
    [
        (0x00000000, "good"),  # Good
        (0x00A20000, "good"),  # GoodLocalOverride
        (0x40000000, "uncertain"),  # Uncertain
        (0x408F0000, "uncertain"),  # UncertainLastUsableValue... family
        (0x80000000, "bad"),  # Bad
        (0x80340000, "bad"),  # BadNodeIdUnknown
        (0xC0000000, "bad"),  # reserved severity 11: treat as bad (Part 4 §7.39)
    ],
)
def test_status_code_severity_maps_to_quality(status: int, quality: str) -> None:
    assert quality_of(status) == quality


@pytest.mark.parametrize(
    ("text", "spec"),
    [
        ("None", SecuritySpec("None")),
        ("none", SecuritySpec("None")),
        ("Sign/Basic256Sha256", SecuritySpec("Sign", "Basic256Sha256")),
        ("SignAndEncrypt/Basic256Sha256", SecuritySpec("SignAndEncrypt", "Basic256Sha256")),
        ("Sign/Aes128_Sha256_RsaOaep", SecuritySpec("Sign", "Aes128Sha256RsaOaep")),
        (
            "SignAndEncrypt/Aes128Sha256RsaOaep",
            SecuritySpec("SignAndEncrypt", "Aes128Sha256RsaOaep"),
        ),
    ],
)
def test_security_strings(text: str, spec: SecuritySpec) -> None:
    assert parse_security(text) == spec


@pytest.mark.parametrize("text", ["Encrypt/Basic256Sha256", "Sign/Basic128Rsa15", "Sign", ""])
def test_bad_security_strings_have_a_hint(text: str) -> None:
    with pytest.raises(ValueError, match="Basic256Sha256 or Aes128_Sha256_RsaOaep"):
        parse_security(text)


def test_browse_path_parsing() -> None:
    steps = parse_browse_path("/Objects/2:Machine/2:Spindle/2:Speed")
    assert steps == [(0, "Objects"), (2, "Machine"), (2, "Spindle"), (2, "Speed")]
    assert format_browse_path(steps) == "/Objects/2:Machine/2:Spindle/2:Speed"
    with pytest.raises(ValueError, match="must start at the root"):
        parse_browse_path("Objects/2:Machine")
    with pytest.raises(ValueError, match="empty segment"):
        parse_browse_path("/Objects//2:Machine")


@given(
    st.lists(
        st.tuples(st.integers(0, 9), st.from_regex(r"[A-Za-z][A-Za-z0-9_.]{0,10}", fullmatch=True)),
        min_size=1,
    )
)
def test_browse_path_round_trip(steps: list[tuple[int, str]]) -> None:
    assert parse_browse_path(format_browse_path(steps)) == steps


def test_watchdog_needs_three_silent_keepalive_periods() -> None:
    dog = StaleWatchdog(publishing_interval_s=0.5, keepalive_count=2, min_s=0.1)
    dog.feed(100.0)
    assert dog.limit_s == 3.0
    assert not dog.is_stale(102.9)
    assert dog.is_stale(103.1)
    dog.feed(103.1)
    assert not dog.is_stale(104.0)


def test_watchdog_floor_protects_fast_subscriptions() -> None:
    dog = StaleWatchdog(publishing_interval_s=0.05, keepalive_count=1, min_s=1.0)
    assert dog.limit_s == 1.0


def test_pin_decisions_and_store(tmp_path: Path) -> None:
    assert decide(None, "AA") is PinDecision.FIRST_USE
    assert decide("AA", "AA") is PinDecision.MATCH
    assert decide("AA", "BB") is PinDecision.CHANGED
    store = PinStore(tmp_path)
    assert store.pinned("mill-01") is None
    sha = store.pin("mill-01", b"\x30\x03\x02\x01\x01", "opc.tcp://plc:4840")
    assert store.pinned("mill-01") == sha == thumbprints(b"\x30\x03\x02\x01\x01")[0]
    assert store.pinned("mill-02") is None


def test_first_certificate_peels_a_chain() -> None:
    leaf = b"\x30\x82\x00\x02\xaa\xbb"
    assert first_certificate(leaf + b"\x30\x82\x00\x01\xcc") == leaf
    assert first_certificate(leaf) == leaf


@pytest.mark.parametrize(
    ("value", "wire"),
    [
        (1.5, 1.5),
        (7, 7),
        (True, True),
        ("RUN", "RUN"),
        (None, None),
        (math.nan, None),
        (math.inf, None),
        (b"\x01\xff", "01ff"),
        ([1, 2.5], "[1, 2.5]"),
        (SimpleNamespace(Text="Auto", Locale="en"), "Auto"),
        ("x" * 2000, "x" * 1024),
        ("é" * 600, "é" * 512),  # 1 KiB of UTF-8, not 1,024 characters
        ("O1234\x00\x00\x00", "O1234"),  # a PLC STRING padded with NULs
        ("AB\x00CD", "AB"),  # a NUL ends the string, as in the PLC's C string
        (SimpleNamespace(Text="Auto\x00", Locale="en"), "Auto"),
    ],
)
def test_wire_values(value: object, wire: object) -> None:
    assert wire_value(value) == wire


@pytest.mark.parametrize("value", ["O1234\x00\x00", "é" * 600, "x\x00" * 700])
def test_every_opcua_string_is_one_the_hub_stores(value: str) -> None:
    text = wire_value(value)
    assert isinstance(text, str)
    encoded = wire_contract.encode_telemetry(
        "pc", 1, [wire_contract.Reading(tag="t", ts=1, v=text)]
    )
    assert encoded  # encode_telemetry applies the hub's rules: no NUL, at most 1 KiB


def test_sample_prefers_source_then_server_timestamp() -> None:
    source = dt.datetime(2026, 1, 2, 3, 4, 5, 600_000, tzinfo=dt.UTC)
    server = dt.datetime(2026, 1, 2, 3, 4, 6, tzinfo=dt.UTC)

    def dv(src: object, srv: object, status: int = 0) -> SimpleNamespace:
        return SimpleNamespace(
            Value=SimpleNamespace(Value=42.0),
            StatusCode=SimpleNamespace(value=status),
            SourceTimestamp=src,
            ServerTimestamp=srv,
        )

    assert sample_from_datavalue("t", dv(source, server), 1).ts == epoch_ms(source)
    assert sample_from_datavalue("t", dv(None, server), 1).ts == epoch_ms(server)
    assert sample_from_datavalue("t", dv(None, None), 1).ts == 1
    assert sample_from_datavalue("t", dv(source, None, 0x80000000), 1).quality == "bad"
    naive = dt.datetime(2026, 1, 2, 3, 4, 5, 600_000)  # asyncua decodes UTC as naive
    assert epoch_ms(naive) == epoch_ms(source)


def test_point_needs_exactly_one_address() -> None:
    with pytest.raises(ValueError, match="exactly one of node or browse_path"):
        OpcuaPoint("x")
    with pytest.raises(ValueError, match="exactly one of node or browse_path"):
        OpcuaPoint("x", node="ns=2;s=A", browse_path="/Objects/2:A")
    assert OpcuaPoint("x", browse_path="/Objects/2:A").address == "/Objects/2:A"


def test_device_silence_tells_a_silent_device_from_a_wrong_node() -> None:
    from edge_agent.drivers.opcua.quality import device_silence  # noqa: PLC0415

    good, uncertain = 0, 0x40000000
    comm, not_connected, unknown_node = 0x80050000, 0x808A0000 | 0x0400, 0x80340000
    assert device_silence([comm, good]) == (True, None)  # one tag answers: the device does
    assert device_silence([uncertain]) == (True, None)
    assert device_silence([comm, not_connected]) == (
        False,
        "BadCommunicationError, BadNotConnected",
    )
    assert device_silence([comm, unknown_node]) == (False, None)  # a config problem, not silence
    assert device_silence([]) == (False, None)


async def test_a_subscription_the_agent_cannot_keep_up_with_is_reported_not_silent(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Issue 28: a pushing server the agent cannot keep up with costs the oldest samples — and
    the device's status says how much it keeps, with a warning when it starts and a line when
    it ends, as a polled device's schedule does."""
    from edge_agent.drivers.base import Sample  # noqa: PLC0415
    from edge_agent.drivers.opcua.driver import OpcuaDriver  # noqa: PLC0415
    from edge_agent.drivers.opcua.points import OpcuaEndpoint  # noqa: PLC0415
    from edge_agent.drivers.opcua.session import SessionOptions  # noqa: PLC0415
    from edge_agent.drivers.polling import SCHEDULE_WINDOW_S  # noqa: PLC0415

    caplog.set_level("INFO", logger="edge_agent.drivers.opcua.driver")
    now = [1000.0]
    driver = OpcuaDriver(
        "oven-01",
        OpcuaEndpoint("opc.tcp://127.0.0.1:4840"),
        [],
        SessionOptions(state_dir=tmp_path),
        queue_samples=20,
        max_age_s=1e9,
        clock=lambda: now[0],
    )
    batch = [Sample("t", 1, 1.0, "good")] * 10
    taken = driver.batches()
    for _ in range(10):  # nobody takes batches: 8 of the 10 pushed are dropped
        driver._put(batch)
    now[0] += SCHEDULE_WINDOW_S
    driver._put(batch)
    assert driver.stats.dropped_samples == 90
    assert driver.health.schedule == pytest.approx(1 - 90 / 110, abs=0.001)
    assert "keeps only 18 % of what the OPC-UA server sends" in caplog.text
    # Taken as fast as pushed again: back to all, and said so.
    for _ in range(20):
        await anext(taken)
        driver._put(batch)
        now[0] += SCHEDULE_WINDOW_S / 10
    assert driver.health.schedule == 1.0
    assert "keeping up with its subscription again" in caplog.text


async def test_an_agent_behind_its_subscription_delivers_fresh_values_late_by_at_most_max_age(
    tmp_path: Path,
) -> None:
    """Issue 28: no unbounded queue between the subscription and the buffer. A consumer that
    falls behind gets the newest samples, none older than `max_age_s` while newer ones wait,
    and never more than `queue_samples` are held; a stop hands over everything held."""
    from edge_agent.drivers.base import Sample  # noqa: PLC0415
    from edge_agent.drivers.opcua.driver import OpcuaDriver  # noqa: PLC0415
    from edge_agent.drivers.opcua.points import OpcuaEndpoint  # noqa: PLC0415
    from edge_agent.drivers.opcua.session import SessionOptions  # noqa: PLC0415

    now = [1000.0]
    driver = OpcuaDriver(
        "oven-01",
        OpcuaEndpoint("opc.tcp://127.0.0.1:4840"),
        [],
        SessionOptions(state_dir=tmp_path),
        queue_samples=1000,
        max_age_s=0.6,
        clock=lambda: now[0],
    )
    taken = driver.batches()
    for tick in range(8):  # one response per 0.25 s; the consumer takes none for 2 s
        driver._put([Sample("t", tick, float(tick), "good")] * 10)
        now[0] += 0.25
    # Older than 0.6 s while newer ones wait: dropped. The newest two are taken.
    async with asyncio.timeout(5):
        got = [(await anext(taken))[0].ts for _ in range(2)]
    assert got == [6, 7]
    assert driver.stats.dropped_samples == 60
    # The memory bound: never more than queue_samples held, the oldest going first.
    for tick in range(300):
        driver._put([Sample("t", tick, 1.0, "good")] * 10)
    assert driver._pending_samples == 1000
    assert driver.stats.dropped_samples == 60 + 2000
    # A stop hands over everything held, however old.
    now[0] += 60
    await driver.close()
    async with asyncio.timeout(5):
        rest = [batch async for batch in taken]
    assert [b[0].ts for b in rest] == list(range(200, 300))
