"""The alert engine's state machines, fed readings directly (pure: no servers)."""

from __future__ import annotations

import random
import re
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from hub.alerts.engine import AgentHealth, Engine, MachineState, SeriesKey, Transition
from hub.alerts.rules import AlertsConfig, LimitsPolicy, Rule, parse_duration_ms
from hub.config import HubConfig, load_config
from hub.errors import ConfigError

NOW = 1_800_000_000_000


def rule(**kw: object) -> Rule:
    return Rule.model_validate({"name": "r", **kw})


def feed(engine: Engine, values: list[tuple[int, float]], tag: str = "oil_temp",
         q: str = "good", now: int | None = None) -> list[Transition]:  # fmt: skip
    out: list[Transition] = []
    for ts, v in values:
        out += engine.readings("s", "l", "press-1", [(tag, ts, v, q)], now or ts)
    return out


def states(out: list[Transition]) -> list[tuple[str, int]]:
    return [(t.state, t.ts) for t in out]


def test_durations_read_like_a_technician_writes_them() -> None:
    assert parse_duration_ms("5s") == 5000
    assert parse_duration_ms("1h") == 3_600_000
    assert parse_duration_ms("250ms") == 250
    assert parse_duration_ms(2) == 2000
    with pytest.raises(ValueError, match="duration"):
        parse_duration_ms("soon")


def test_threshold_waits_for_for_and_clears_only_past_the_hysteresis() -> None:
    e = Engine([rule(kind="threshold", above=90, hysteresis=2, **{"for": "5s"},
                     match={"machine": "press-*", "tag": "oil_temp"})])  # fmt: skip
    t = NOW
    out = feed(e, [(t, 91), (t + 2000, 92), (t + 4000, 89), (t + 5000, 91), (t + 9000, 91.5)])
    assert out == []  # dipped under at +4 s: the 5 s restart from +5 s
    out = feed(e, [(t + 10_000, 93)])
    assert states(out) == [("active", t + 10_000)]
    first = out[0].alert_id
    # Hovering between 88 and 90 keeps it active; only ≤ 88 clears.
    assert feed(e, [(t + 11_000, 89), (t + 12_000, 88.5), (t + 13_000, 90)]) == []
    out = feed(e, [(t + 14_000, 88)])
    assert states(out) == [("cleared", t + 14_000)]
    assert out[0].alert_id == first
    # A re-fire is a new occurrence.
    out = feed(e, [(t + 20_000, 95), (t + 26_000, 95)])
    assert states(out) == [("active", t + 26_000)]
    assert out[0].alert_id != first


def test_rules_match_by_globs_and_skip_other_series() -> None:
    e = Engine([rule(kind="threshold", above=1, match={"machine": "press-*", "tag": "oil_temp"})])
    assert feed(e, [(NOW, 5)], tag="water_temp") == []
    out: list[Transition] = e.readings("s", "l", "lathe-1", [("oil_temp", NOW, 5.0, "good")], NOW)
    assert out == []
    assert states(feed(e, [(NOW, 5)])) == [("active", NOW)]


def test_pending_condition_fires_on_tick_without_new_samples() -> None:
    e = Engine([rule(kind="threshold", below=10, **{"for": "3s"})])
    assert feed(e, [(NOW, 5)]) == []
    assert e.tick(NOW + 2000) == []
    out = e.tick(NOW + 3500)
    assert states(out) == [("active", NOW + 3000)]
    assert e.tick(NOW + 9000) == []


def test_same_readings_from_the_same_state_give_the_same_ids() -> None:
    r = rule(kind="threshold", above=50)
    a, b = Engine([r]), Engine([r])
    values = [(NOW + i * 1000, 60.0 if i % 7 < 3 else 40.0) for i in range(40)]
    assert [t.alert_id for t in feed(a, values)] == [t.alert_id for t in feed(b, values)]


def test_checkpoint_restores_the_state_exactly() -> None:
    r = [rule(kind="zscore", window="10m", min_samples=20)]
    rng = random.Random(7)
    values = [(NOW + i * 1000, 50 + rng.gauss(0, 1)) for i in range(200)]
    whole = Engine(r)
    feed(whole, values)
    first = Engine(r)
    feed(first, values[:120])
    second = Engine(r)
    second.restore(first.export())
    feed(second, values[120:])
    assert whole.export() == second.export()


def test_zscore_learns_the_series_and_fires_on_a_spike_not_on_noise() -> None:
    e = Engine([rule(kind="zscore", window="1h", z=4, min_samples=30)])
    rng = random.Random(1)
    noise = [(NOW + i * 1000, 20 + rng.gauss(0, 0.5)) for i in range(600)]
    assert feed(e, noise) == []
    t = NOW + 600_000
    out = feed(e, [(t, 30.0), (t + 1000, 20.1)])
    assert states(out) == [("active", t), ("cleared", t + 1000)]


def test_rate_fires_on_fast_change() -> None:
    e = Engine([rule(kind="rate", above=2, per="s", window="5s")])
    slow = [(NOW + i * 1000, 10 + 0.5 * i) for i in range(10)]
    assert feed(e, slow) == []
    t = NOW + 10_000
    assert states(feed(e, [(t, 30.0)])) == [("active", t)]


def test_quality_bad_for_a_while() -> None:
    e = Engine([rule(kind="quality", **{"for": "2s"})])
    assert feed(e, [(NOW, 1), (NOW + 1000, 1)], q="bad") == []
    assert states(feed(e, [(NOW + 2000, 1)], q="bad")) == [("active", NOW + 2000)]
    assert states(feed(e, [(NOW + 3000, 1)])) == [("cleared", NOW + 3000)]


def test_backlog_readings_are_found_late_and_old_ones_only_recorded() -> None:
    e = Engine([rule(kind="threshold", above=90)], late_after_ms=60_000)
    late_now = NOW + 600_000  # an agent's backlog arriving 10 minutes on
    out = feed(e, [(NOW, 95), (NOW + 1000, 80)], now=late_now)
    assert [(t.state, t.found_late) for t in out] == [("active", True), ("cleared", True)]
    # Older than what the series already had: history only, active and cleared at once.
    out = feed(e, [(NOW + 500, 99)], now=late_now)
    assert [(t.state, t.found_late, t.ts) for t in out] == [
        ("active", True, NOW + 500), ("cleared", True, NOW + 500)]  # fmt: skip


def test_text_values_are_skipped_except_by_quality_rules() -> None:
    e = Engine([rule(kind="threshold", above=1)])
    out = e.readings("s", "l", "press-1", [("oil_temp", NOW, "jam", "good")], NOW)
    assert out == []


def test_config_names_what_is_wrong() -> None:
    with pytest.raises(ValidationError, match="needs `above` and/or `below`"):
        rule(kind="threshold")
    with pytest.raises(ValidationError, match="notifies nobody-hook"):
        AlertsConfig.model_validate(
            {"rules": [{"name": "a", "kind": "threshold", "above": 1, "notify": ["nobody-hook"]}]}
        )
    with pytest.raises(ValidationError, match="two rules are named"):
        AlertsConfig.model_validate({"rules": [
            {"name": "a", "kind": "quality"}, {"name": "a", "kind": "quality"}]})  # fmt: skip


def test_the_documented_examples_are_valid_configs() -> None:
    root = Path(__file__).resolve().parents[3]
    for page in ("docs/alerts.md", "README.md"):
        blocks = re.findall(r"```yaml\n(.*?)```", (root / page).read_text(), re.S)
        examples = [yaml.safe_load(b) for b in blocks if "alerts:" in b]
        assert examples, page
        for doc in examples:
            smtp = doc.get("smtp") or {"host": "mail.example"}
            HubConfig.model_validate(
                {
                    "storage": "postgresql://h/db",
                    "alerts": doc["alerts"],
                    "smtp": smtp,
                    "kafka": {"bootstrap": "127.0.0.1:9092"},
                }
            )


def test_offline_and_stale_rules_name_the_outage_by_its_start() -> None:
    rules = [
        rule(name="down", kind="offline", **{"for": "30s"}, match={"machine": "press-*"}),
        rule(name="quiet", kind="stale"),
    ]
    e = Engine(rules)
    start = NOW
    down = MachineState("s", "l", "press-1", "offline", start, "agent pc-1 is offline")
    assert e.machine_states([down], start + 10_000) == []
    out = e.machine_states([down], start + 31_000)
    assert [(t.rule.name, t.state, t.ts) for t in out] == [("down", "active", start + 30_000)]
    # Another evaluator (or this one after a crash) names the same occurrence.
    again = Engine(rules).machine_states([down], start + 40_000)
    assert [t.alert_id for t in again] == [out[0].alert_id]
    up = MachineState("s", "l", "press-1", "online", None, "data flowing")
    cleared = e.machine_states([up], start + 50_000)
    assert [(t.state, t.ts) for t in cleared] == [("cleared", start + 50_000)]
    stale = MachineState("s", "l", "lathe-2", "stale", start, "no reading for 90 s")
    assert [t.rule.name for t in e.machine_states([stale], start + 1)] == ["quiet"]


def test_edge_rule_fires_on_drops_and_an_old_backlog() -> None:
    e = Engine([rule(name="edge", kind="edge", backlog_age="5m")])
    report = AgentHealth("s", "l", "pc-1", NOW, dropped=0, backlog_age_ms=1000)
    assert e.agent_health([report], NOW) == []
    dropping = report._replace(report_ms=NOW + 10_000, dropped=250)
    out = e.agent_health([dropping], NOW + 10_000)
    assert [(t.state, t.key.machine, t.key.tag) for t in out] == [("active", "pc-1", "(agent)")]
    calm = dropping._replace(report_ms=NOW + 20_000)
    assert [t.state for t in e.agent_health([calm], NOW + 20_000)] == ["cleared"]
    behind = calm._replace(report_ms=NOW + 30_000, backlog_age_ms=400_000)
    out = e.agent_health([behind], NOW + 30_000)
    assert [(t.state, t.ts) for t in out] == [("active", NOW + 30_000 - 400_000 + 300_000)]
    # The state survives a checkpoint: no second `active` for the same backlog.
    restored = Engine([rule(name="edge", kind="edge", backlog_age="5m")])
    restored.restore(e.export())
    assert restored.agent_health([behind._replace(report_ms=NOW + 32_000)], NOW + 32_000) == []


def test_profile_limits_are_threshold_rules_unless_a_rule_covers_the_series() -> None:
    policy = LimitsPolicy.model_validate({"severity": "critical", "for": "1s"})
    own = rule(name="own", kind="threshold", above=500, match={"tag": "pressure"})
    e = Engine([own], limits_policy=policy)
    temp = SeriesKey("s", "l", "press-1", "oil_temp")
    e.set_limits({temp: (10.0, 80.0), temp._replace(tag="pressure"): (0.0, 250.0)})
    out = feed(e, [(NOW, 85), (NOW + 1000, 86)])
    assert [(t.rule.name, t.rule.severity, t.state) for t in out] == [
        ("profile-limits", "critical", "active")]  # fmt: skip
    # The pressure series has a rule of its own: 300 bar is within it.
    assert feed(e, [(NOW, 300)], tag="pressure") == []
    # New limits keep the occurrence going; back inside them, it clears.
    e.set_limits({temp: (10.0, 90.0)})
    assert [t.state for t in feed(e, [(NOW + 2000, 85)])] == ["cleared"]
    # Below the low limit fires too; switched off by policy, limits do nothing.
    assert [t.state for t in feed(e, [(NOW + 3000, 5), (NOW + 4000, 5)])] == ["active"]
    off = Engine([], limits_policy=LimitsPolicy(enabled=False))
    off.set_limits({temp: (10.0, 80.0)})
    assert feed(off, [(NOW, 99), (NOW + 5000, 99)]) == []


def test_a_timer_fires_a_backlogged_condition_as_found_late() -> None:
    e = Engine([rule(kind="threshold", above=90, **{"for": "10s"})], late_after_ms=60_000)
    assert feed(e, [(NOW, 95)], now=NOW + 600_000) == []  # from an agent's backlog
    out = e.tick(NOW + 600_500)
    assert [(t.state, t.found_late) for t in out] == [("active", True)]


def test_rules_may_live_in_a_file_the_config_names(tmp_path: Path) -> None:
    (tmp_path / "alerts.yaml").write_text(
        "rules:\n  - {name: hot, kind: threshold, above: 90, notify: [hook]}\n"
    )
    config = tmp_path / "hub.yaml"
    config.write_text(
        "storage: postgresql://h/db\n"
        "alerts:\n  file: alerts.yaml\n"
        "  notifiers: [{name: hook, kind: webhook, url: 'http://127.0.0.1:9/x'}]\n"
    )
    loaded = load_config(config, {})
    assert loaded.alerts is not None
    assert [r.name for r in loaded.alerts.rules] == ["hot"]
    (tmp_path / "alerts.yaml").write_text("rulez: []\n")
    with pytest.raises(ConfigError, match="expected only `notifiers:` and `rules:`"):
        load_config(config, {})


def test_zscore_calls_a_frozen_signal_stuck_but_not_a_resting_one_or_a_flag() -> None:
    e = Engine([rule(kind="zscore", window="1h", z=4, min_samples=30)])
    rng = random.Random(3)
    values = [(NOW + i * 1000, 20 + rng.gauss(0, 0.5)) for i in range(300)]
    assert feed(e, values) == []
    t = NOW + 300_000
    frozen = [(t + i * 1000, 20.37) for i in range(8)]
    out = feed(e, frozen)
    assert [t.state for t in out] == ["active"]
    assert "unchanged" in out[0].detail
    # A load that rests at 0 between jobs is not stuck at 0.
    e2 = Engine([rule(kind="zscore", window="1h", z=50, min_samples=30)])
    cycle = [(NOW + i * 1000, 0.0 if (i // 20) % 2 else 30 + rng.gauss(0, 2)) for i in range(400)]
    assert feed(e2, cycle) == []
    # Flags have no mean: z-scores leave them alone.
    e3 = Engine([rule(kind="zscore", min_samples=2)])
    flags = [("running", NOW + i * 1000, i % 50 == 0, "good") for i in range(200)]
    assert e3.readings("s", "l", "m", flags, NOW + 200_000) == []


def test_alerts_on_sqlite_are_accepted_except_what_sqlite_cannot_do(tmp_path: Path) -> None:
    hook = {"name": "ops-hook", "kind": "webhook", "url": "http://127.0.0.1:9/hook"}
    rules = [{"name": "hot", "kind": "threshold", "above": 90, "notify": ["ops-hook"]}]
    ok = HubConfig.model_validate(
        {"storage": "sqlite:///hub.db", "alerts": {"notifiers": [hook], "rules": rules}}
    )
    assert ok.alerts is not None
    assert [r.name for r in ok.alerts.rules] == ["hot"]
    # What SQLite cannot do is named, each problem at once, with what to do instead.
    config = tmp_path / "hub.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "storage": "sqlite:///hub.db",
                "redis": {"url": "redis://127.0.0.1:6379"},
                "alerts": {"notifiers": [{"name": "bus", "kind": "kafka"}]},
            }
        )
    )
    with pytest.raises(ConfigError) as caught:
        load_config(config)
    text = str(caught.value)
    assert "hub.yaml" in text
    assert "a kafka notifier needs PostgreSQL storage (the Kafka outbox)" in text
    assert "several instances (a `redis:` section) need PostgreSQL storage for alerts" in text
