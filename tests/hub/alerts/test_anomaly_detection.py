"""The z-score rule's anomaly detection (level, change, runs), fed readings directly (pure), and
its quality on the simulator's plant with seeded anomalies (docs/alerts.md "Anomalies")."""

from __future__ import annotations

import json
import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_agent.simulators.anomalies import Anomaly, AnomalyKind
from edge_agent.simulators.plant import Plant
from hub.alerts.engine import Engine, Limits, SeriesKey, Transition, _ZScore
from hub.alerts.rules import Rule

NOW = 1_800_000_000_000


def zscore(**kw: object) -> Engine:
    return Engine([Rule.model_validate({"name": "odd", "kind": "zscore", **kw})])


def feed(engine: Engine, values: list[float], start: int = 0, tag: str = "t") -> list[Transition]:
    """One sample a second from second `start`."""
    out: list[Transition] = []
    for i, v in enumerate(values, start):
        ts = NOW + i * 1000
        out += engine.readings("s", "l", "m", [(tag, ts, v, "good")], ts)
    return out


def actives(out: list[Transition]) -> list[int]:
    """Seconds (from NOW) at which an alert became active."""
    return [(t.ts - NOW) // 1000 for t in out if t.state == "active"]


def smooth(n: int, seed: int = 1, step: float = 0.0) -> list[float]:
    """A slow temperature: wandering a little, noisy; quantised to `step` if given."""
    rng = random.Random(seed)
    values = [60 + 2 * math.sin(i / 600) + rng.gauss(0, 0.05) for i in range(n)]
    return [round(v / step) * step for v in values] if step else values


def test_a_drift_is_caught_by_its_change_long_before_its_level() -> None:
    e = zscore()
    base = smooth(1200)
    assert feed(e, base) == []
    # 0.5 °C/s: inside the noise band's 4σ for several seconds, far faster than it ever moves.
    drift = [base[-1] + 0.5 * (i + 1) for i in range(30)]
    out = feed(e, drift, 1200)
    assert actives(out) == [1200]
    assert "changing +0.5/s" in out[0].detail
    # The alert holds while the drift lasts: what fires is not learnt.
    assert [t.state for t in out] == ["active"]


def test_a_coarse_slow_signal_is_a_step_signal_yet_a_jump_off_it_is_caught() -> None:
    e = zscore()
    base = smooth(1200, step=0.1)  # repeats most samples: judged like a step signal
    assert feed(e, base) == []
    assert actives(feed(e, [base[-1] + 35], 1200)) == [1200]


def test_the_end_of_a_spike_clears_it_and_is_no_anomaly_of_its_own() -> None:
    e = zscore()
    base = smooth(1200)
    feed(e, base)
    out = feed(e, [base[-1] + 30, base[-1] + 30, base[-1]], 1200)
    assert [(t.state, (t.ts - NOW) // 1000) for t in out] == [("active", 1200), ("cleared", 1202)]


def test_a_counter_that_jumps_is_caught_its_increments_and_pauses_are_not() -> None:
    e = zscore()
    rng = random.Random(2)
    count, values = 1000, []
    for i in range(2000):
        # A part now and then; the line stops for a minute every ten.
        if (i // 60) % 10 != 9 and rng.random() < 0.3:
            count += 1
        values.append(float(count))
    assert feed(e, values) == []
    out = feed(e, [count + 2e9], 2000)
    assert actives(out) == [2000]


def test_a_frozen_signal_is_stuck_a_resting_one_or_a_pausing_counter_is_not() -> None:
    e = zscore()
    base = smooth(600)
    feed(e, base)
    out = feed(e, [base[-1] + 0.3] * 8, 600)
    # The slow quantised signal holds values for a few samples anyway: judged only once it
    # has gone twice as long as it ever has and p < 1e-6.
    assert len(actives(out)) <= 1
    noisy = zscore()
    rng = random.Random(4)
    feed(noisy, [50 + rng.gauss(0, 1) for _ in range(600)])
    out = feed(noisy, [50.123] * 6, 600)
    assert actives(out) == [603]  # four equal samples
    assert "unchanged for 4 samples" in out[0].detail
    # An hour meter that counts every sample stops.
    meter = zscore()
    feed(meter, [1000 + i / 3600 for i in range(600)])
    assert actives(feed(meter, [1000 + 600 / 3600] * 5, 600)) == [603]
    # A ram at the top of every stroke (never resting there) stuck at the top is stuck.
    ram = zscore()
    stroke = [0.0, 60.0, 250.0, 280.0, 150.0, 40.0]
    feed(ram, [stroke[i % 6] + (i % 7) * 0.1 * (i % 6 > 0) for i in range(600)])
    assert actives(feed(ram, [0.0] * 6, 600)) == [603]


def test_a_setpoint_steps_without_alert_but_wandering_is_caught() -> None:
    e = zscore()
    values = [180.0] * 900 + [200.0] * 900 + [160.0] * 900
    assert feed(e, values) == []
    # Four changes in a row where one at a time is all it ever does.
    assert actives(feed(e, [160.0 + 3 * (i + 1) for i in range(5)], 2700)) == [2703]


def test_values_past_the_profile_limits_are_for_the_limits_rule_and_not_learnt() -> None:
    e = zscore()
    key = SeriesKey("s", "l", "m", "t")
    e.set_limits({key: (0.0, 100.0)})
    base = smooth(900)
    feed(e, base)
    out = feed(e, [150.0] * 10, 900)
    assert {t.rule.name for t in out} == {"profile-limits"}
    watch = next(w for w in e._watches[key] if w.rule.name == "odd")
    assert isinstance(watch, _ZScore)
    assert watch.export() is not None
    state = e.export()
    json.dumps(state, allow_nan=False)  # the checkpoint is plain JSON, no infinities
    assert max(watch.hi) < 100  # never learnt


def test_a_checkpoint_of_an_earlier_model_is_learnt_afresh() -> None:
    e = zscore()
    feed(e, smooth(200))
    snapshot = e.export()
    for _key, _last, states in snapshot["series"]:
        states["odd"] = states["odd"][:13]  # the shape the previous z-score saved
    again = zscore()
    again.restore(snapshot)
    assert feed(again, smooth(100), 200) == []


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    cut=st.integers(1, 399),
    level=st.floats(-1e6, 1e6),
    scale=st.floats(0.01, 1e3),
    kind=st.sampled_from(["noise", "steps", "counter", "quantised"]),
)
def test_a_restored_checkpoint_judges_the_rest_of_a_series_exactly_alike(
    seed: int, cut: int, level: float, scale: float, kind: str
) -> None:
    rng = random.Random(seed)
    values: list[float] = []
    v = level
    for i in range(400):
        if kind == "noise":
            v = level + scale * rng.gauss(0, 1)
        elif kind == "steps":
            v = level + scale * (i // 50 % 3)
        elif kind == "counter":
            v += scale * (rng.random() < 0.4)
        else:
            v = level + round(rng.gauss(0, 1)) * scale
        if rng.random() < 0.01:
            v += scale * 50  # now and then an anomaly, so the states that fire are covered
        values.append(v)
    whole = zscore(min_samples=20)
    expected = feed(whole, values)
    first = zscore(min_samples=20)
    head = feed(first, values[:cut])
    snapshot = json.loads(json.dumps(first.export(), allow_nan=False))
    second = zscore(min_samples=20)
    second.restore(snapshot)
    tail = feed(second, values[cut:], cut)
    assert [(t.alert_id, t.state, t.ts) for t in head + tail] == [
        (t.alert_id, t.state, t.ts) for t in expected
    ]


# The simulated plant: anomalies the detector can see within 10 s, and a clean run.
KINDS: tuple[AnomalyKind, ...] = ("spike", "drift", "stuck", "out_of_range")
SEEN = {  # machine, tag: a continuous or counting signal of each machine type
    "press-01": ("oil_temp", "pressure"),
    "conveyor-01": ("motor_temp",),
    "oven-01": ("zone2_temp",),
    "compressor-01": ("run_hours", "outlet_temp"),
    "cnc-01": ("spindle_temp",),
}


def run_plant(plant: Plant, seconds: int) -> list[Transition]:
    numeric: dict[SeriesKey, Limits] = {
        SeriesKey("p", "l", name, spec.name): (float(spec.lo), float(spec.hi))
        for name, m in plant.machines.items()
        for spec in m.tags
        if spec.hi > spec.lo and spec.type not in ("bool", "string", "Boolean", "String")
    }
    engine = zscore()
    engine.set_limits(numeric)
    out: list[Transition] = []
    for t in range(seconds):
        snap = plant.sample(float(t))
        ts = NOW + t * 1000
        for name, values in snap.values.items():
            rows = [(tag, ts, v, "good") for tag, v in values.items()]
            out += engine.readings("p", "l", name, rows, ts)
    return [t for t in out if t.state == "active"]


def test_the_simulated_plant_alerts_on_what_can_be_seen_and_rarely_on_a_clean_run() -> None:
    warmup = 1800
    anomalies = []
    targets = [(m, tag) for m, tags in SEEN.items() for tag in tags]
    for i, (machine, tag) in enumerate(t for t in targets for _ in KINDS):
        kind = KINDS[i % len(KINDS)]
        if kind in ("spike", "drift") and tag == "pressure":
            continue  # inside a stroke's own swing: only a model of the cycle would see it
        if kind in ("stuck", "drift") and tag in ("oil_temp", "outlet_temp", "motor_temp"):
            # Slow, coarse signals hold a value for many samples anyway: judged as step
            # signals, stuck and a drift of 1 %/s show only later (docs/alerts.md).
            continue
        anomalies.append(Anomaly(machine, tag, kind, start=warmup + 90 * i))
    plant = Plant(5, 21, anomalies=anomalies)
    fired = run_plant(plant, warmup + 90 * len(targets) * len(KINDS))
    missed = [
        (a.machine, a.tag, a.kind)
        for a in anomalies
        if not any(
            t.key.machine == a.machine
            and t.key.tag == a.tag
            and 0 <= t.ts - NOW - a.start * 1000 <= 10_000
            for t in fired
        )
    ]
    assert missed == [], missed
    hours = 4
    clean = run_plant(Plant(5, 22), warmup + hours * 3600)
    false = [t for t in clean if t.ts - NOW >= warmup * 1000]
    assert len(false) / (5 * hours) < 1.0  # false alerts per machine-hour


def strokes(n: int, seed: int = 5, start: int = 100_000) -> list[float]:
    """A press's stroke counter read once a second: one stroke every 5.5-6.5 s."""
    rng = random.Random(seed)
    count, due, out = start, rng.uniform(5.5, 6.5), []
    for i in range(n):
        if i >= due:
            count += 1
            due += rng.uniform(5.5, 6.5)
        out.append(float(count))
    return out


def test_a_counter_that_stops_counting_at_its_regular_pace_is_stuck() -> None:
    e = zscore()
    values = strokes(1800)
    assert feed(e, values) == []  # its pauses of 5-6 samples are its pace
    # Stopped: caught once it has paused a quarter longer than it ever has (within 8 s).
    out = feed(e, [values[-1]] * 12, 1800)
    fired = actives(out)
    assert len(fired) == 1
    assert 1800 <= fired[0] <= 1808
    assert "has not counted for" in out[0].detail


def test_a_counter_with_irregular_pauses_is_not_judged_by_its_pace() -> None:
    e = zscore()
    rng = random.Random(6)
    count, values = 0, []
    for i in range(1800):
        # Items at random, none while the belt is jammed for a minute every quarter hour.
        if (i // 60) % 15 != 14 and rng.random() < 0.8:
            count += 1
        values.append(float(count))
    assert feed(e, values) == []
    assert feed(e, [float(count)] * 30, 1800) == []


@given(st.integers(min_value=0, max_value=10_000))
@settings(max_examples=20, deadline=None)
def test_a_regular_counter_never_alerts_while_it_keeps_its_pace(seed: int) -> None:
    assert feed(zscore(), strokes(1500, seed)) == []


def test_a_second_stuck_sensor_is_caught_as_fast_as_the_first() -> None:
    e = zscore()
    rng = random.Random(7)
    values = [50 + rng.gauss(0, 1) for _ in range(900)]
    feed(e, values)
    first = feed(e, [50.5] * 60, 900)
    feed(e, [50 + rng.gauss(0, 1) for _ in range(240)], 960)
    second = feed(e, [49.5] * 60, 1200)
    assert actives(first) == [903]
    assert actives(second) == [1203]  # the first frozen minute did not raise the bar


def test_a_machine_that_flags_its_own_fault_is_not_judged_while_it_does() -> None:
    e = zscore()
    rng = random.Random(8)

    def second(i: int, current: float, jammed: bool) -> list[Transition]:
        ts = NOW + i * 1000
        rows = [("motor_current", ts, current, "good"), ("jammed", ts, jammed, "good")]
        return e.readings("s", "l", "belt", rows, ts)

    for i in range(900):
        second(i, 8 + rng.gauss(0, 0.2), False)
    # Jammed: the stalled motor trips, its current falls to nothing; the flag says why.
    out = [t for i in range(900, 930) for t in second(i, 0.5 if i == 900 else 0.0, True)]
    # Running again: the current climbs back while the grace lasts.
    out += [t for i in range(930, 935) for t in second(i, 2.0 * (i - 929), False)]
    assert actives(out) == []
    out = [t for i in range(935, 1000) for t in second(i, 8 + rng.gauss(0, 0.2), False)]
    assert actives(out) == []
    # Without the flag, the same fall is an anomaly.
    assert actives(second(1000, 0.5, False)) == [1000]


def test_quiet_while_is_a_zscore_option_and_may_be_emptied() -> None:
    with pytest.raises(ValueError, match="quiet_while"):
        Rule.model_validate({"name": "x", "kind": "threshold", "above": 1, "quiet_while": []})
    rule = Rule.model_validate({"name": "odd", "kind": "zscore", "quiet_while": []})
    assert rule.quiet_while == ()
    e = Engine([rule])
    for i in range(900):
        ts = NOW + i * 1000
        e.readings("s", "l", "m", [("t", ts, 8.0 + (i % 7) * 0.1, "good")], ts)
    rows = [("t", NOW + 900_000, 0.5, "good"), ("jammed", NOW + 900_000, True, "good")]
    assert actives(e.readings("s", "l", "m", rows, NOW + 900_000)) == [900]


def test_a_checkpoint_remembers_a_fault_flag_that_is_still_set() -> None:
    e = zscore()
    rng = random.Random(9)
    for i in range(900):
        ts = NOW + i * 1000
        e.readings("s", "l", "belt", [("motor_current", ts, 8 + rng.gauss(0, 0.2), "good")], ts)
    ts = NOW + 900_000
    e.readings("s", "l", "belt", [("jammed", ts, True, "good")], ts)
    state = json.loads(json.dumps(e.export()))
    again = zscore()
    again.restore(state)
    # The flag is sent only when it changes: still jammed after the restart, still quiet.
    ts += 1000
    assert again.readings("s", "l", "belt", [("motor_current", ts, 0.0, "good")], ts) == []
