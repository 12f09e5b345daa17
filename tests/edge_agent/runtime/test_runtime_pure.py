"""Pure parts of the runtime: samples → readings, device health, the status document."""

from edge_agent.buffer import BufferStats, Reading
from edge_agent.drivers import DeviceHealth, offline_after
from edge_agent.drivers.base import Sample
from edge_agent.publish import PublishStats
from edge_agent.runtime import Production, build_status, status_state, to_readings
from edge_agent.runtime.production import PRODUCED_MINUTES


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


def test_production_tracks_last_good_read_skips_and_rate() -> None:
    p = Production()
    for second in range(60):
        p.record([Reading("a", second * 1000, 1.0)], 0, now=100.0 + second)
    p.record([Reading("a", 99_000, 1.0, "bad")], 1, now=160.5)
    assert p.last_good_ts == 59_000
    assert p.skipped == 1
    assert p.per_minute(160.5) == 60.0


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_device_is_offline_only_after_failing_for_its_threshold() -> None:
    assert offline_after(1.0, 1.0) == 3.0  # three missed polls
    assert offline_after(0.1, 3.0) == 5.0  # a fast poll never beats timeout + 2 s
    clock = Clock(1000.0)
    h = DeviceHealth("m1", offline_after_s=3.0, clock=clock)
    assert h.state() == "connecting"
    h.poll_ok()
    assert h.state() == "online"
    assert h.why() is None
    clock.now = 1001.0
    h.poll_failed("no answer from 10.0.0.5:502 (unit 1)")
    clock.now = 1003.9
    h.poll_failed("no answer from 10.0.0.5:502 (unit 1)")
    assert h.state() == "online"  # one slow answer is not an outage
    clock.now = 1004.0
    assert h.state() == "offline"
    why = h.why()
    assert why is not None
    assert why.startswith("no answer from 10.0.0.5:502 (unit 1) since ")
    assert h.errors == 2
    h.poll_ok()  # the first good poll: online again at once
    assert h.state() == "online"
    assert h.errors == 2


def test_a_device_that_never_answered_goes_offline_too() -> None:
    clock = Clock(50.0)
    h = DeviceHealth("m1", offline_after_s=5.0, clock=clock)
    h.poll_failed("cannot open /dev/ttyUSB0")
    clock.now = 54.0
    assert h.state() == "connecting"
    clock.now = 55.0
    assert h.state() == "offline"


def test_production_per_minute_of_reading_time() -> None:
    h = Production()
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
        devices={"m1": DeviceHealth("m1", clock=lambda: 10.0)},
        production={"m1": Production(produced=42)},
        buf=stats(),
        backlog=2000,
        pub=pub,
        receipt_timeout=30.0,
        receipts=True,
        broker="h:1883",
    )
    assert doc.state == "online"
    assert doc.devices["m1"].dropped == 3
    assert doc.devices["m1"].produced == 42
    assert doc.devices["m1"].state == "connecting"
    assert doc.devices["m1"].online is False
    assert doc.buffer.oldest_age_ms == 9_000
    assert doc.backlog.model_dump() == {
        "readings": 2000,
        "oldest_unsent_age_ms": None,
        "drain_rate": 50.0,
        "eta_s": 40.0,
    }
    # The status file holds it with the names tools read ("bytes", not the attribute name),
    # and reads back to the same report.
    saved = doc.to_json()
    assert saved["buffer"]["bytes"] == 500  # type: ignore[index]
    assert type(doc).model_validate(saved) == doc
