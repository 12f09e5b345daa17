"""Alert quality on the simulated plant, a smaller run of bench/alerts_quality.py: the simulator's
injected anomalies are the ground truth, the hub's engine with the default z-score rule and the
profiles' limits judges them (docs/alerts.md "Anomalies").

Issue 20's target is ≥ 95 % of injected anomalies alerted within 10 s and < 1 false alert per
machine-hour. The false-alert half is met and asserted; detection is not yet (about 78 % on
fitting tags: spikes and drifts inside a cyclic signal's own swing, stuck slow quantised
signals), so this asserts the floor measured today and marks the target as a strict xfail that
turns into a failure the day it is met, so the floor gets raised.
"""

from __future__ import annotations

import importlib.util
import sys
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

BENCH = Path(__file__).resolve().parents[3] / "bench" / "alerts_quality.py"
ANOMALIES = 60  # 15 of each kind, one a minute after a 30-minute warm-up
CLEAN_HOURS = 2.0  # × 5 machines: 10 machine-hours, as the target asks at least
# The benchmark's own seeds (11 for the anomaly run, 12 for the clean one), not chosen for
# the result: other seeds give other figures (docs/alerts.md, Figures).
SEED = 11
FLOOR = 0.75  # measured with these settings: 0.80 (48 of 60), less a margin


def _bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("alerts_quality_bench", BENCH)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@cache
def _detection() -> dict[str, Any]:
    result: dict[str, Any] = _bench().detection(5, SEED, ANOMALIES, fitting=True)
    return result


@cache
def _clean() -> dict[str, Any]:
    result: dict[str, Any] = _bench().clean_run(5, SEED + 1, CLEAN_HOURS)
    return result


def test_fewer_than_one_false_alert_per_machine_hour_on_a_clean_plant() -> None:
    clean = _clean()
    assert clean["clean_machine_hours"] >= 10
    assert clean["false_alerts_per_machine_hour"] < 1.0, clean


def test_injected_anomalies_are_alerted_within_10s_at_least_as_often_as_measured() -> None:
    found = _detection()
    assert found["anomalies"] == ANOMALIES
    assert found["detected_within_10s"] >= FLOOR, found
    # Out-of-range values are the profile limits' business: every one of them.
    assert found["by_kind"]["out_of_range"]["rate"] == 1.0


@pytest.mark.xfail(strict=True, reason="issue 20: detection within 10 s is about 78 %, not 95 %")
def test_the_issue_target_of_95_percent_within_10s() -> None:
    assert _detection()["detected_within_10s"] >= 0.95
