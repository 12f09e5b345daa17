"""The agent publishes its profiles' `limits` in the machines' meta, for the hub's alerts."""

from __future__ import annotations

from pathlib import Path

import pytest

import wire
from edge_agent.config.loader import load_agent_config
from edge_agent.runtime.meta import meta_messages, profile_meta

REPO = Path(__file__).resolve().parents[3]


def test_the_simulated_plant_publishes_its_tags_plausible_ranges() -> None:
    loaded = load_agent_config(REPO / "examples/plant.yaml", env={})
    meta = profile_meta(loaded)
    assert meta["press-01"]["oil_temp"].limits == wire.Limits(low=10, high=80)
    assert meta["press-01"]["running"].limits is None  # a bool has no range
    assert meta["cnc-01"]["spindle_speed"].limits is not None  # OPC-UA profiles too
    payloads = meta_messages("sim-plant", "line-1", ["press-01"], meta, 1)
    topic = "ms/v1/sim-plant/line-1/press-01/meta"
    body = wire.parse_meta(topic, payloads[topic])
    assert body.tags["pressure"].limits == wire.Limits(low=0, high=250)


def test_limits_need_a_range() -> None:
    with pytest.raises(ValueError, match="`low` must be below `high`"):
        wire.Limits(low=5, high=5)
    with pytest.raises(ValueError, match="give `low`, `high` or both"):
        wire.Limits()
