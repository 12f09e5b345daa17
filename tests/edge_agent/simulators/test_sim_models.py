"""Machine models and the plant: deterministic, plausible, cadence-independent (no servers)."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_agent.simulators import Anomaly, Plant, load_schedule, machine_names
from edge_agent.simulators.machines import (
    MACHINE_TYPES,
    CncMill,
    Machine,
    Oven,
)
from edge_agent.simulators.registers import quantize, quantizer
from edge_agent.simulators.tags import ModbusTag


def _series(seed: int, times: list[float], machines: int = 5) -> list[dict[str, dict[str, object]]]:
    plant = Plant(machines, seed)
    return [plant.sample(t).values for t in times]


TIMES = [0.0, 0.5, 1.0, 2.3, 7.9, 30.0, 61.7, 300.0]


def test_same_seed_gives_the_same_series() -> None:
    assert _series(42, TIMES) == _series(42, TIMES)


def test_different_seeds_give_different_series() -> None:
    a, b = _series(1, TIMES), _series(2, TIMES)
    for name, _ in machine_names(5):
        assert [s[name] for s in a] != [s[name] for s in b], name


@settings(max_examples=25, deadline=None)
@given(
    cls=st.sampled_from(MACHINE_TYPES),
    seed=st.integers(0, 2**31),
    stops=st.lists(st.floats(0, 120, allow_nan=False), min_size=1, max_size=8),
)
def test_values_depend_on_time_not_on_how_often_we_ask(
    cls: type[Machine], seed: int, stops: list[float]
) -> None:
    """Asking at any intermediate times leaves the value at t = 120 s unchanged."""
    direct = cls(f"{cls.prefix}-01", seed)
    direct.advance_to(120.0)
    stepped = cls(f"{cls.prefix}-01", seed)
    for t in sorted(stops):
        stepped.advance_to(t)
        stepped.values()
    stepped.advance_to(120.0)
    assert stepped.values() == direct.values()


def test_names_spread_over_the_five_types() -> None:
    names = [n for n, _ in machine_names(12)]
    assert names[:5] == ["press-01", "conveyor-01", "oven-01", "compressor-01", "cnc-01"]
    assert names[5:7] == ["press-02", "conveyor-02"]
    assert len(set(names)) == 12


@pytest.mark.parametrize("cls", MACHINE_TYPES, ids=lambda c: c.kind)
def test_every_value_stays_in_its_plausible_range_for_an_hour(cls: type[Machine]) -> None:
    m = cls(f"{cls.prefix}-01", 3)
    for step in range(0, 3600, 7):
        m.advance_to(step)
        values = m.values()
        assert set(values) == {t.name for t in m.tags}
        for tag in m.tags:
            v = values[tag.name]
            if isinstance(v, bool | str) or tag.lo == tag.hi:
                continue
            assert tag.lo <= v <= tag.hi, (tag.name, step, v)


def test_cnc_spindle_temperature_follows_load_with_lag() -> None:
    m = CncMill("cnc-01", 0)
    temps, loads = [], []
    for t in range(900):
        m.advance_to(t)
        temps.append(m.temp)
        loads.append(m.load)
    # The hottest moment comes after the heaviest cut starts, not with it (first-order lag).
    first_heavy = next(i for i, load in enumerate(loads) if load > 60)
    assert temps[first_heavy + 30] > temps[first_heavy] + 2.0
    assert max(temps) < 25.0 + 0.45 * 75.0


def test_oven_zones_follow_setpoints_with_thermal_lag() -> None:
    m = Oven("oven-01", 0)
    m.advance_to(0)
    start_gap = m.setpoints()[2] - m.temps[2]
    m.advance_to(60)
    assert m.setpoints()[2] - m.temps[2] > 0.5 * start_gap  # a minute is not enough
    m.advance_to(1500)
    assert abs(m.setpoints()[2] - m.temps[2]) < 15.0  # 25 minutes is


def test_press_counts_one_cycle_per_stroke() -> None:
    plant = Plant(1, 0)
    counts = [plant.sample(t).values["press-01"]["cycle_count"] for t in range(61)]
    strokes = counts[-1] - counts[0]
    assert 8 <= strokes <= 12  # ~6 s per stroke
    assert all(b - a in (0, 1) for a, b in itertools.pairwise(counts))


def test_served_values_are_what_the_registers_can_hold() -> None:
    values = Plant(5, 0).sample(10.0).values
    tag = next(t for t in Plant(1, 0).machines["press-01"].tags if t.name == "oil_temp")
    assert isinstance(tag, ModbusTag)
    v = values["press-01"]["oil_temp"]
    assert isinstance(v, float)
    assert math.isclose(v * 10, round(v * 10), abs_tol=1e-9)  # int16 with scale 0.1


# -- anomalies on the pure plant ----------------------------------------------------------


def _with(anomaly: Anomaly, t: float, seed: int = 5) -> tuple[object, object]:
    clean = Plant(5, seed).sample(t).values[anomaly.machine][anomaly.tag]
    dirty = Plant(5, seed, [anomaly]).sample(t).values[anomaly.machine][anomaly.tag]
    return clean, dirty


def test_spike_adds_half_the_range_while_active() -> None:
    clean, dirty = _with(Anomaly("press-01", "oil_temp", "spike", start=10, duration=2), 11)
    assert dirty == pytest.approx(float(clean) + 35.0, abs=0.11)  # type: ignore[arg-type]
    clean, dirty = _with(Anomaly("press-01", "oil_temp", "spike", start=10, duration=2), 13)
    assert dirty == clean


def test_drift_grows_with_time() -> None:
    a = Anomaly("compressor-01", "discharge_pressure", "drift", start=0, duration=100)
    clean, dirty = _with(a, 50)
    assert dirty == pytest.approx(float(clean) + 0.1 * 50, abs=0.011)  # type: ignore[arg-type]


def test_stuck_freezes_the_value() -> None:
    plant = Plant(5, 0, [Anomaly("oven-01", "zone1_temp", "stuck", start=5, duration=100)])
    values = {plant.sample(t).values["oven-01"]["zone1_temp"] for t in range(5, 60)}
    assert len(values) == 1


def test_dropout_reads_zero_and_opcua_reads_bad() -> None:
    plant = Plant(5, 0, [Anomaly("cnc-01", "spindle_temp", "dropout", start=0, duration=10)])
    sample = plant.sample(1.0)
    assert sample.values["cnc-01"]["spindle_temp"] == 0.0
    assert ("cnc-01", "spindle_temp") in sample.bad


def test_out_of_range_goes_beyond_the_plausible_range() -> None:
    _, dirty = _with(Anomaly("conveyor-01", "motor_temp", "out_of_range", start=0), 1)
    assert dirty == pytest.approx(145.0)


def test_anomalies_on_unknown_tags_or_strings_are_refused_with_the_names() -> None:
    plant = Plant(5, 0)
    with pytest.raises(ValueError, match="its tags are"):
        plant.add_anomaly(Anomaly("press-01", "oil", "drift"))
    with pytest.raises(ValueError, match="machines are"):
        plant.add_anomaly(Anomaly("press-09", "oil_temp", "drift"))
    with pytest.raises(ValueError, match="string"):
        plant.add_anomaly(Anomaly("press-01", "model", "drift"))


_MODBUS_TAGS = [
    t for cls in MACHINE_TYPES for t in cls.tags if isinstance(t, ModbusTag) and t.type != "string"
]


@settings(max_examples=300, deadline=None)
@given(
    tag=st.sampled_from(_MODBUS_TAGS),
    value=st.one_of(st.floats(-1e12, 1e12, allow_nan=False), st.integers(-(2**40), 2**40)),
)
def test_the_fast_quantizer_agrees_with_the_reference(tag: ModbusTag, value: float) -> None:
    assert quantizer(tag)(value) == quantize(tag, value)


def test_anomaly_schedule_file_loads_and_applies_at_its_time(tmp_path: Path) -> None:
    path = tmp_path / "anomalies.yaml"
    path.write_text(
        "anomalies:\n"
        "  - {at: 30, machine: press-01, tag: oil_temp, kind: spike, duration: 5, magnitude: 50}\n"
        "  - {at: 0, machine: cnc-01, tag: spindle_load, kind: dropout}\n",
        encoding="utf-8",
    )
    schedule = load_schedule(path)
    assert [(a.kind, a.start, a.duration) for a in schedule] == [
        ("spike", 30.0, 5.0),
        ("dropout", 0.0, 10.0),
    ]
    plain, planned = Plant(5, 0), Plant(5, 0, schedule)
    for t in (29.0, 31.0, 36.0):
        a = plain.sample(t).values["press-01"]["oil_temp"]
        b = planned.sample(t).values["press-01"]["oil_temp"]
        assert (b == pytest.approx(a + 50, abs=0.11)) == (t == 31.0)


def test_anomaly_schedule_errors_name_the_entry(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("- {at: 1, machine: press-01, tag: oil_temp, kind: drift, rate: 2}\n")
    with pytest.raises(ValueError, match=r"anomalies\[0\] has unknown keys \['rate'\]"):
        load_schedule(path)
    path.write_text("- {at: 1, machine: press-01, kind: drift}\n")
    with pytest.raises(ValueError, match=r"anomalies\[0\] is missing 'tag'"):
        load_schedule(path)
