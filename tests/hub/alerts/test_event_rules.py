"""Event rules: which machine events they match, the occurrences they open and resolve, and the
config errors a technician gets for a bad one (pure: no servers)."""

from __future__ import annotations

from pathlib import Path

import pytest

from hub.alerts.engine import Engine, Event, Transition
from hub.alerts.feed import decode_events
from hub.alerts.notify import _text
from hub.alerts.rules import EventMatch, Rule
from hub.bridge.kafka.records import encode_event
from hub.config import load_config
from hub.errors import ConfigError
from hub.storage.model import EventBatch, EventRow

NOW = 1_800_000_000_000


def guard_rule(**kw: object) -> Rule:
    body: dict[str, object] = {
        "name": "guard-open",
        "event": {"min_severity": 600, "type": "alarm", "source": "guard_*"},
        "match": {"machine": "press-*"},
        "severity": "critical",
    }
    return Rule.model_validate({**body, **kw})


def event(
    ident: str = "ev-1",
    ts: int = NOW,
    *,
    severity: int = 800,
    state: str | None = "active",
    source: str = "guard_open",
    type_: str = "alarm",
) -> Event:
    return Event(ident, ts, source, type_, severity, "Guard door open", state)


def raise_(engine: Engine, *events: Event, machine: str = "press-7") -> list[Transition]:
    return engine.events("s", "l", machine, list(events), NOW)


def test_an_event_given_implies_kind_event() -> None:
    r = guard_rule()
    assert r.kind == "event"
    assert r.event == EventMatch(min_severity=600, type="alarm", source="guard_*")
    assert Rule.model_validate({"name": "any", "kind": "event", "event": {}}).event == EventMatch()


def test_only_events_at_or_above_the_severity_of_the_type_source_and_machine_match() -> None:
    e = Engine([guard_rule()])
    assert raise_(e, event("a", severity=599)) == []
    assert raise_(e, event("b", type_="warning")) == []
    assert raise_(e, event("c", source="door_open")) == []
    assert raise_(e, event("d"), machine="lathe-1") == []
    out = raise_(e, event("e", severity=600))
    assert [(t.state, t.key.tag, t.value, t.rule.name) for t in out] == [
        ("active", "guard_open", 600.0, "guard-open")
    ]
    assert out[0].detail == "Guard door open (alarm from guard_open, severity 600)"
    assert not out[0].found_late


def test_active_opens_the_same_id_cleared_resolves_and_a_repeat_changes_nothing() -> None:
    e = Engine([guard_rule()])
    opened = raise_(e, event("ev-1", NOW), event("ev-1", NOW + 500, state=None))
    assert [t.state for t in opened] == ["active"]  # the repeat is the same alarm
    assert raise_(e, event("ev-1", NOW + 1000, state="acked")) == []  # the machine's own ack
    assert e.active() == 1
    # Cleared at a lower severity than the rule's: still the end of what this id raised.
    closed = raise_(e, event("ev-1", NOW + 2000, state="cleared", severity=100))
    assert [(t.state, t.ts, t.alert_id) for t in closed] == [
        ("cleared", NOW + 2000, opened[0].alert_id)
    ]
    assert e.active() == 0
    assert raise_(e, event("ev-1", NOW + 3000, state="cleared")) == []  # cleared twice
    assert raise_(e, event("ev-2", NOW + 3000, state="cleared")) == []  # never raised here
    again = raise_(e, event("ev-1", NOW + 4000))
    assert [t.state for t in again] == ["active"]
    assert again[0].alert_id != opened[0].alert_id  # raised again: a new occurrence


def test_an_event_with_no_state_opens_an_occurrence() -> None:
    out = raise_(Engine([guard_rule()]), event(state=None))
    assert [t.state for t in out] == ["active"]


def test_occurrence_ids_are_the_same_when_the_feed_is_replayed_from_a_checkpoint() -> None:
    e = Engine([guard_rule()])
    opened = raise_(e, event("ev-1"))
    snapshot = e.export()
    replayed = Engine([guard_rule()])
    assert raise_(replayed, event("ev-1")) == opened  # same ids: recording them again is a no-op
    restored = Engine([guard_rule()])
    restored.restore(snapshot)
    closed = raise_(restored, event("ev-1", NOW + 1000, state="cleared"))
    assert [(t.state, t.alert_id) for t in closed] == [("cleared", opened[0].alert_id)]
    # A rule since removed forgets what it raised.
    gone = Engine([guard_rule(name="other")])
    gone.restore(snapshot)
    assert raise_(gone, event("ev-1", NOW + 1000, state="cleared")) == []


def test_events_from_an_agents_backlog_are_found_late_and_so_is_their_clear() -> None:
    e = Engine([guard_rule()], late_after_ms=60_000)
    old = NOW - 600_000
    opened = raise_(e, event("ev-1", old))
    closed = raise_(e, event("ev-1", NOW, state="cleared"))
    assert [(t.state, t.found_late) for t in opened + closed] == [
        ("active", True),
        ("cleared", True),
    ]


def test_every_event_rule_matching_an_event_opens_its_own_occurrence() -> None:
    broad = Rule.model_validate({"name": "all-alarms", "event": {"type": "alarm"}})
    out = raise_(Engine([guard_rule(), broad]), event())
    assert sorted(t.rule.name for t in out) == ["all-alarms", "guard-open"]
    assert len({t.alert_id for t in out}) == 2


def test_the_feed_carries_events_in_the_outbox_body_format() -> None:
    batch = EventBatch("s", "l", "press-7", "agent-1", 3, ())
    rows = [EventRow("ev-1", NOW, "guard_open", "alarm", 800, 'door "A"\nopen', "active", "{}"),
            EventRow("ev-1", NOW + 9, "guard_open", "alarm", 800, "", "cleared", "{}")]  # fmt: skip
    body = "\n".join(encode_event(batch, r) for r in rows)
    assert decode_events(body) == [
        Event("ev-1", NOW, "guard_open", "alarm", 800, 'door "A"\nopen', "active"),
        Event("ev-1", NOW + 9, "guard_open", "alarm", 800, "", "cleared"),
    ]


def test_an_event_mail_names_the_source_severity_and_message() -> None:
    text = _text({
        "rule": "guard-open", "kind": "event", "state": "active", "severity": "critical",
        "site": "s", "line": "l", "machine": "press-7", "tag": "guard_open", "value": 800.0,
        "ts": NOW, "detail": "Guard door open", "id": "x", "by": "millstream", "comment": None,
    })  # fmt: skip
    assert "press-7, event source guard_open" in text
    assert "Event severity: 800 at" in text
    assert "Message: Guard door open" in text


@pytest.mark.parametrize(
    ("rule", "says"),
    [
        ("{name: g, kind: event}", "an event rule needs `event`"),
        ("{name: g, event: {min_severity: 600}, above: 3, for: 5s}",
         "`above`, `for` do not apply to an event rule"),
        ("{name: g, kind: threshold, above: 3, event: {type: alarm}}",
         "`event` belongs to event rules; write `kind: event`"),
        ("{name: g, event: {source: guard}, match: {tag: guard}}",
         "matches the event's source with `event: {source: ...}`"),
        ("{name: g, event: {min_severity: 1200}}", "less than or equal to 1000"),
        ("{name: g, event: {severity: 600}}", "Extra inputs are not permitted"),
    ],
)  # fmt: skip
def test_a_bad_event_rule_is_a_config_error_naming_the_file_and_rule(
    tmp_path: Path, rule: str, says: str
) -> None:
    config = tmp_path / "hub.yaml"
    config.write_text(f"storage: postgresql://h/db\nalerts:\n  rules:\n    - {rule}\n")
    with pytest.raises(ConfigError) as caught:
        load_config(config, {})
    text = str(caught.value)
    assert str(config) in text
    assert "alerts.rules.0" in text
    assert says in text
