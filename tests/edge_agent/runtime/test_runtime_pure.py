"""Pure parts of the runtime: samples → readings, device health, the status document."""

from edge_agent.buffer import BufferStats, Reading
from edge_agent.drivers.base import Sample
from edge_agent.publish import PublishStats
from edge_agent.runtime import DeviceHealth, build_status, status_state, to_readings
from edge_agent.runtime.health import PRODUCED_MINUTES


def stats(**kw: object) -> BufferStats:
    base: dict[str, object] = {
        "chunks": 1,
        "readings": 10,
        "nbytes": 500,
        "oldest_ts": 1_000,
        "pending": {"m1": 10},
        "dropped": {"m1": 3},
        "downsampled": {},
        "in_flight": 10,
        "rejected": {},
    }
    base.update(kw)
    return BufferStats(**base)  # type: ignore[arg-type]


def test_samples_without_a_usable_value_are_counted_not_buffered() -> None:
    samples = [
        Sample("a", 1, 1.5, "good"),
        Sample("b", 1, None, "bad"),
        Sample("c", 1, float("nan"), "uncertain"),
        Sample("d", 1, True, "good"),
    ]
    readings, skipped = to_readings(samples)
    assert readings == [Reading("a", 1, 1.5, "good"), Reading("d", 1, True, "good")]
    assert skipped == 2


def test_health_tracks_last_good_read_errors_and_rate() -> None:
    h = DeviceHealth()
    for second in range(60):
        h.record([Reading("a", second * 1000, 1.0)], 0, now=100.0 + second)
    h.record([Reading("a", 99_000, 1.0, "bad")], 1, now=160.5)
    assert h.last_good_ts == 59_000
    assert h.errors == 1
    assert h.per_minute(160.5) == 60.0
    h.failed("timed out")
    assert not h.online
    assert h.last_error == "timed out"


def test_health_counts_production_per_minute_of_reading_time() -> None:
    h = DeviceHealth()
    # Late readings (a backlog read after an outage) count in the minute they were taken.
    h.record([Reading("a", 59_999, 1.0), Reading("a", 60_000, 2.0)], 0, now=500.0)
    h.record([Reading("a", 61_000, 1.0), Reading("b", 5_000, 1.0, "bad")], 0, now=501.0)
    assert h.produced_minutes() == ((0, 2), (60_000, 2))
    for minute in range(2, 2 + PRODUCED_MINUTES):
        h.record([Reading("a", minute * 60_000, 1.0)], 0, now=600.0)
    kept = h.produced_minutes()
    assert len(kept) == PRODUCED_MINUTES
    assert kept[0] == (2 * 60_000, 1)


def test_state_says_why_when_receipts_stop() -> None:
    pub = PublishStats(connected=True, last_receipt_at=100.0)
    assert status_state(pub, stats(), 30.0, now=150.0, receipts=True) == ("online", None)
    state, why = status_state(pub, stats(), 30.0, now=200.0, receipts=True)
    assert state == "faulted"
    assert why is not None
    assert "no receipt from the hub for 100 s" in why
    assert status_state(pub, stats(), 30.0, now=200.0, receipts=False)[0] == "online"
    never = PublishStats(connected=True)
    state, why = status_state(never, stats(), 30.0, now=200.0, receipts=True)
    assert state == "faulted"
    assert why is not None
    assert "no receipt from the hub since the agent started" in why
    assert status_state(PublishStats(), stats(), 30.0, now=1.0, receipts=True)[0] == "offline"


def test_status_document_fields() -> None:
    pub = PublishStats(connected=True, last_receipt_at=9.5)
    pub.backlog.add(500, 5.0)
    doc = build_status(
        agent_id="a1",
        version="0.1.0",
        now=10.0,
        devices={"m1": DeviceHealth(produced=42)},
        buf=stats(),
        backlog=2000,
        pub=pub,
        receipt_timeout=30.0,
        receipts=True,
        broker="h:1883",
    )
    assert doc["state"] == "online"
    assert doc["devices"]["m1"]["dropped"] == 3
    assert doc["devices"]["m1"]["produced"] == 42
    assert doc["buffer"]["oldest_age_ms"] == 9_000
    assert doc["backlog"] == {
        "readings": 2000,
        "oldest_unsent_age_ms": None,
        "drain_rate": 50.0,
        "eta_s": 40.0,
    }
