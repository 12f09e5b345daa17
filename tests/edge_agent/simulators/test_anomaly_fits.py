"""Which anomaly kinds mean something on which simulated tag (anomalies.fits): the ground truth
of the alert-quality benchmark draws only from these."""

from __future__ import annotations

from edge_agent.simulators.anomalies import ANOMALY_KINDS, fits, resolution
from edge_agent.simulators.plant import Plant
from edge_agent.simulators.tags import SimTag


def _tags() -> dict[str, dict[str, SimTag]]:
    plant = Plant(5, 1)
    return {name: {t.name: t for t in m.tags} for name, m in plant.machines.items()}


def test_stuck_fits_what_the_machine_drives_not_what_a_client_writes() -> None:
    tags = _tags()
    oven, conveyor, cnc = tags["oven-01"], tags["conveyor-01"], tags["cnc-01"]
    assert not fits("stuck", oven["zone1_setpoint"])
    assert not fits("stuck", conveyor["speed_setpoint"])
    assert fits("stuck", oven["zone1_temp"])
    assert fits("stuck", cnc["axis_x"])


def test_drift_fits_only_where_ten_seconds_of_it_pass_the_tags_resolution() -> None:
    tags = _tags()
    phase, load = tags["press-01"]["stroke_phase"], tags["compressor-01"]["load_state"]
    assert resolution(phase) == 1.0
    assert not fits("drift", phase)
    assert not fits("drift", load)
    assert resolution(tags["press-01"]["oil_temp"]) == 0.1
    assert fits("drift", tags["press-01"]["oil_temp"])
    assert resolution(tags["press-01"]["pressure"]) == 0.0


def test_no_kind_fits_flags_or_text_and_every_kind_fits_a_plain_measurement() -> None:
    tags = _tags()
    for kind in ANOMALY_KINDS:
        assert not fits(kind, tags["press-01"]["running"])
        assert not fits(kind, tags["press-01"]["model"])
        assert fits(kind, tags["press-01"]["pressure"])
