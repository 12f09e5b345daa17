"""The alert engine: rules over readings, one small state machine per (rule, series). Pure.

Every watch runs the same machine: *idle* → (condition bad) *pending* since the first bad sample
→ (bad for `for`) *active* → (condition ok, past the hysteresis) *cleared*, which is idle again;
a re-fire is a new occurrence. What "bad" and "ok" mean is the rule kind's business:

- threshold: above `above` / below `below`; ok only back past the limit by `hysteresis`;
- rate: |change per second (or minute)| over `window` above `above`;
- zscore: |x − mean| / deviation ≥ `z`, against the series' own time-decayed mean and variance
  over `window` (exact running moments until the window is full, so early samples are not
  judged against a deviation that is still growing); samples past the limit are clamped before
  they are learnt, so an anomaly does not teach the model that it is normal;
- quality: the reading's quality is `bad`.

Event rules watch machine events (docs/events.md), not readings: a matching event whose state is
`active` (or none) opens an occurrence, the same event id with state `cleared` resolves it; the
machine's own `acked`/`confirmed` change nothing here (Millstream's acknowledgement is its own).

Time is the readings' own: `for` is measured between sample timestamps, and `tick(now)` fires a
pending watch whose condition still holds once `for` has passed without a new sample. An
occurrence's id is derived from the rule, the series and the timestamp its condition began, so
evaluating the same readings again from the same state (after a crash, from the last
checkpoint) yields the same ids: storing a transition twice is a no-op.

Readings the hub receives more than `late_after` after their timestamp (an agent's backlog after
an outage), or older than what the series already had, are history: they still move the state,
but what they fire is marked `found_late` (recorded, never notified).
"""

from __future__ import annotations

import fnmatch
import math
import re
import uuid
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

from hub.alerts.rules import LimitsPolicy, Rule, format_duration

__all__ = [
    "AgentHealth",
    "Engine",
    "Event",
    "MachineState",
    "SeriesKey",
    "Transition",
    "alert_id",
]

SERIES_KINDS = frozenset({"threshold", "rate", "zscore", "quality"})
MACHINE_KINDS = frozenset({"stale", "offline"})  # on a machine's judged state (hub/query/fleet.py)
AGENT_KINDS = frozenset({"edge"})  # on an agent's health report
EVENT_KINDS = frozenset({"event"})  # on the events machines raise
# Occurrences opened by events whose `cleared` never came are forgotten oldest first past this,
# so a machine raising one-shot events (no state) cannot grow the checkpoint without bound.
MAX_RAISED = 50_000
# The `tag` of an agent's watches and alerts (machine-level alerts have tag ""): `machine` is
# then the agent id.
AGENT_TAG = "(agent)"
# The name of the threshold rules device profiles' `limits` make.
LIMITS_RULE = "profile-limits"

Limits = tuple[float | None, float | None]  # (low, high)
_NAMESPACE = uuid.UUID("6d730000-616c-6572-7473-000000000001")
_GLOB = re.compile(r"[*?\[]")
State = Literal["active", "cleared"]


class SeriesKey(NamedTuple):
    """site, line, machine, tag."""

    site: str
    line: str
    machine: str
    tag: str


def alert_id(rule: str, key: SeriesKey, since_ms: int, *more: str) -> str:
    """The occurrence id: the same rule, series and start (and `more`, an event's id) always
    give the same id."""
    return str(uuid.uuid5(_NAMESPACE, "\x1f".join((rule, *key, str(since_ms), *more))))


class Event(NamedTuple):
    """A machine event as event rules judge it (wire `MachineEvent` without its fields)."""

    id: str
    ts: int
    source: str
    type: str
    severity: int
    message: str
    state: str | None


@dataclass(frozen=True, slots=True)
class Transition:
    """An occurrence changed state (the engine's only output)."""

    alert_id: str
    rule: Rule
    state: State
    key: SeriesKey
    value: float | None
    ts: int
    found_late: bool
    detail: str


class _Watch:
    """One rule on one series: the common state machine; subclasses judge samples."""

    __slots__ = ("active_id", "key", "last_bad", "late", "rule", "since")

    def __init__(self, rule: Rule, key: SeriesKey) -> None:
        self.rule = rule
        self.key = key
        self.since: int | None = None  # first bad sample of the current condition
        self.active_id: str | None = None
        self.late = False  # the active (or pending) condition's samples came late
        self.last_bad = False

    def judge(self, ts: int, v: float, q: str) -> tuple[bool, bool, str]:
        """(bad, ok, detail) for one sample; both False inside the hysteresis band."""
        raise NotImplementedError

    def feed(self, ts: int, v: float, q: str, late: bool, out: list[Transition]) -> bool:
        """Judge a sample, append any transition; True while pending (for the timer list)."""
        bad, ok, detail = self.judge(ts, v, q)
        self.last_bad = bad
        if self.active_id is None:
            if not bad:
                self.since = None
                return False
            if self.since is None:
                self.since = ts
            self.late = late  # a timer firing this condition fires it as late as its samples
            if ts - self.since >= self.rule.for_ms:
                self._fire(ts, v, late, detail, out)
                return False
            return True
        if ok:
            out.append(
                Transition(self.active_id, self.rule, "cleared", self.key, v, ts, self.late, detail)
            )
            self.active_id = None
            self.since = None
        return False

    def due(self, now_ms: int, out: list[Transition]) -> bool:
        """Fire a pending condition whose `for` has passed with no sample since; True if done."""
        if self.active_id is not None or self.since is None or not self.last_bad:
            return True
        if now_ms - self.since < self.rule.for_ms:
            return False
        self._fire(self.since + self.rule.for_ms, None, self.late, "held for the rule's `for`", out)
        return True

    def _fire(
        self, ts: int, v: float | None, late: bool, detail: str, out: list[Transition]
    ) -> None:
        assert self.since is not None
        self.active_id = alert_id(self.rule.name, self.key, self.since)
        self.late = late
        out.append(Transition(self.active_id, self.rule, "active", self.key, v, ts, late, detail))

    def export(self) -> list[Any]:
        """State for a checkpoint (plain JSON values)."""
        return [self.since, self.active_id, self.late, self.last_bad]

    def restore(self, state: list[Any]) -> None:
        """Undo `export`."""
        self.since, self.active_id, self.late, self.last_bad = state[:4]


class _Threshold(_Watch):
    __slots__ = ()

    def judge(self, ts: int, v: float, q: str) -> tuple[bool, bool, str]:
        r = self.rule
        if r.above is not None and v > r.above:
            return True, False, f"{v:g} above {r.above:g}"
        if r.below is not None and v < r.below:
            return True, False, f"{v:g} below {r.below:g}"
        h = r.hysteresis
        ok = (r.above is None or v <= r.above - h) and (r.below is None or v >= r.below + h)
        return False, ok, f"{v:g} within limits"


class _Quality(_Watch):
    __slots__ = ()

    def judge(self, ts: int, v: float, q: str) -> tuple[bool, bool, str]:
        bad = q == "bad"
        return bad, not bad, f"quality {q}"


class _Rate(_Watch):
    __slots__ = ("samples",)

    def __init__(self, rule: Rule, key: SeriesKey) -> None:
        super().__init__(rule, key)
        self.samples: deque[tuple[int, float]] = deque()

    def judge(self, ts: int, v: float, q: str) -> tuple[bool, bool, str]:
        r = self.rule
        window = r.window or 60_000
        samples = self.samples
        samples.append((ts, v))
        while samples and samples[0][0] < ts - window:
            samples.popleft()
        t0, v0 = samples[0]
        if ts == t0:
            return False, True, "one sample in the window"
        unit = 1000.0 if r.per == "s" else 60_000.0
        rate = (v - v0) * unit / (ts - t0)
        limit = r.above if r.above is not None else math.inf
        bad = abs(rate) > limit
        return bad, abs(rate) <= limit - r.hysteresis, f"changing {rate:+g}/{r.per}"

    def export(self) -> list[Any]:
        return [*super().export(), list(self.samples)]

    def restore(self, state: list[Any]) -> None:
        super().restore(state)
        self.samples = deque((int(t), float(v)) for t, v in state[4])


class _ZScore(_Watch):
    """The series' own normal: time-decayed mean and variance, and how often a sample repeats
    the one before. A continuously varying signal (one that repeats itself in fewer than
    `CONTINUOUS` of its samples) is judged two ways: a value `z` deviations from the mean, and a
    value frozen for a run of samples its own repeat rate makes all but impossible (`STUCK_P`),
    the signature of a stuck sensor or a dead PLC input — unless the signal has rested at that
    very value before (a load at 0 between jobs) or only ever counts up (a counter pauses while
    its machine stops). A step signal (setpoints, counts, states) repeats most samples: its
    steps are operations, not anomalies, and it is not judged.
    """

    __slots__ = ("down", "eq", "last_ts", "last_v", "mean", "n", "rests", "same", "var")

    CONTINUOUS = 0.2
    STUCK_P = 1e-6

    def __init__(self, rule: Rule, key: SeriesKey) -> None:
        super().__init__(rule, key)
        self.mean = 0.0
        self.var = 0.0
        self.n = 0
        self.last_ts = 0
        self.eq = 0.0  # share of samples equal to the one before
        self.same = 0  # samples in a row equal to the one before
        self.last_v: float | None = None
        self.down = 0.0  # share of samples lower than the one before (0: a counter)
        self.rests: list[float] = []  # values the signal has rested at (runs of 3 or more)

    def judge(self, ts: int, v: float, q: str) -> tuple[bool, bool, str]:
        r = self.rule
        limit = r.z
        mean = self.mean
        bad, ok = False, True
        detail = "learning"
        x = v
        repeat = v == self.last_v
        lower = self.last_v is not None and v < self.last_v
        self.same = self.same + 1 if repeat else 0
        self.last_v = v
        if self.n >= r.min_samples and self.eq < self.CONTINUOUS:
            # A perfectly flat signal has no deviation; judge it against a sliver of its level.
            std = max(math.sqrt(self.var), 1e-6 * abs(mean), 1e-9)
            z = (v - mean) / std
            stuck = (
                self.same >= 3
                and max(self.eq, 1e-3) ** self.same < self.STUCK_P
                and self.down > 0.05
                and v not in self.rests
            )
            bad = abs(z) >= limit or stuck
            ok = abs(z) < limit - max(r.hysteresis, 0.5) and not stuck
            detail = (
                f"{v:g} unchanged for {self.same + 1} samples"
                if stuck
                else f"{v:g} is {z:+.1f}σ from {mean:g}"
            )
            # Learn the sample clamped to the limit: an anomaly must not become the norm.
            x = min(max(v, mean - limit * std), mean + limit * std)
        if self.n == 0:
            self.mean, self.n, self.last_ts = x, 1, ts
            return bad, ok, detail
        window = r.window or 3_600_000
        alpha = 1.0 - math.exp(-max(ts - self.last_ts, 0) / window)
        self.n += 1
        alpha = max(alpha, 1.0 / self.n)  # exact running moments while the window fills
        d = x - mean
        self.mean = mean + alpha * d
        self.var = (1.0 - alpha) * (self.var + alpha * d * d)
        if not bad:  # a frozen run must not teach the model that repeats are normal
            self.eq += alpha * ((1.0 if repeat else 0.0) - self.eq)
            self.down += alpha * ((1.0 if lower else 0.0) - self.down)
            if self.same == 3 and v not in self.rests:
                self.rests = [*self.rests[-7:], v]
        self.last_ts = ts
        return bad, ok, detail

    def export(self) -> list[Any]:
        return [*super().export(), self.mean, self.var, self.n, self.last_ts, self.eq,
                self.same, self.last_v, self.down, list(self.rests)]  # fmt: skip

    def restore(self, state: list[Any]) -> None:
        super().restore(state)
        (self.mean, self.var, self.n, self.last_ts, self.eq, self.same, self.last_v, self.down,
         rests) = state[4:13]  # fmt: skip
        self.rests = list(rests)


_WATCHES: dict[str, type[_Watch]] = {
    "threshold": _Threshold,
    "rate": _Rate,
    "zscore": _ZScore,
    "quality": _Quality,
}


class MachineState(NamedTuple):
    """A machine's judged state and since when (epoch ms, from stored facts, so the same
    outage always has the same start), with the reason in words."""

    site: str
    line: str
    machine: str
    state: str
    since_ms: int | None
    reason: str


class AgentHealth(NamedTuple):
    """An agent's last health report: when, readings dropped so far, oldest unsent reading."""

    site: str
    line: str
    agent_id: str
    report_ms: int
    dropped: int
    backlog_age_ms: int | None


class _StateWatch:
    """A rule on a machine's or agent's state. The condition's start comes from the facts
    (an outage's start, the moment the last reading went stale, the report that showed a drop),
    never from when the evaluator noticed: another evaluator, or this one after a restart,
    names the same occurrence."""

    __slots__ = ("active_id", "dropped", "key", "rule")

    def __init__(self, rule: Rule, key: SeriesKey) -> None:
        self.rule = rule
        self.key = key
        self.active_id: str | None = None
        self.dropped: int | None = None  # edge: the agent's drop counter at the last report

    def observe(
        self, bad: bool, since: int | None, now_ms: int, detail: str, out: list[Transition]
    ) -> None:
        if self.active_id is None:
            if bad and since is not None and now_ms - since >= self.rule.for_ms:
                self.active_id = alert_id(self.rule.name, self.key, since)
                ts = since + self.rule.for_ms
                out.append(
                    Transition(
                        self.active_id, self.rule, "active", self.key, None, ts, False, detail
                    )
                )
        elif not bad:
            out.append(
                Transition(
                    self.active_id, self.rule, "cleared", self.key, None, now_ms, False, detail
                )
            )
            self.active_id = None

    def export(self) -> list[Any]:
        return [self.active_id, self.dropped]

    def restore(self, state: list[Any]) -> None:
        self.active_id, self.dropped = state[0], state[1]


class _RuleIndex:
    """Which series rules match a series, without testing every rule's globs on every series:
    rules whose machine and tag are plain names are found by dictionary; only the globbed rest
    are tested (once per series; the engine keeps the answer)."""

    def __init__(self, rules: Iterable[Rule]) -> None:
        self.exact: dict[tuple[str, str], list[Rule]] = {}
        self.globbed: list[tuple[Rule, tuple[re.Pattern[str], ...]]] = []
        for rule in rules:
            m = rule.match
            if not _GLOB.search(m.machine) and not _GLOB.search(m.tag):
                self.exact.setdefault((m.machine, m.tag), []).append(rule)
            else:
                pats = tuple(
                    re.compile(fnmatch.translate(p)) for p in (m.site, m.line, m.machine, m.tag)
                )
                self.globbed.append((rule, pats))

    def matching(self, key: SeriesKey) -> list[Rule]:
        found = []
        for rule in self.exact.get((key.machine, key.tag), ()):
            if fnmatch.fnmatchcase(key.site, rule.match.site) and fnmatch.fnmatchcase(
                key.line, rule.match.line
            ):
                found.append(rule)
        for rule, pats in self.globbed:
            if all(p.match(part) for p, part in zip(pats, key, strict=True)):
                found.append(rule)
        return found


def _event_matches(rule: Rule, e: Event) -> bool:
    m = rule.event
    return (
        m is not None
        and e.severity >= m.min_severity
        and fnmatch.fnmatchcase(e.type, m.type)
        and fnmatch.fnmatchcase(e.source, m.source)
    )


class Engine:
    """Rules over readings and events (see module docstring). Not thread-safe; one evaluator
    owns it."""

    def __init__(
        self,
        rules: Sequence[Rule],
        *,
        late_after_ms: int = 60_000,
        limits_policy: LimitsPolicy | None = None,
    ) -> None:
        self.rules = tuple(r for r in rules if r.kind in SERIES_KINDS)
        self._index = _RuleIndex(self.rules)
        self.state_rules = tuple(r for r in rules if r.kind in MACHINE_KINDS | AGENT_KINDS)
        self._states: dict[SeriesKey, list[_StateWatch]] = {}
        self.event_rules = tuple(r for r in rules if r.kind in EVENT_KINDS)
        self._event_rules_of: dict[tuple[str, str, str], list[Rule]] = {}
        # (rule, site, line, machine, event id) → (occurrence id, found late): events raised
        # and not yet cleared, in the order they were raised.
        self._raised: dict[tuple[str, str, str, str, str], tuple[str, bool]] = {}
        self._policy = limits_policy or LimitsPolicy()
        self.limits: dict[SeriesKey, Limits] = {}
        self._limit_rules: dict[Limits, Rule] = {}
        self._late_after = late_after_ms
        self._watches: dict[SeriesKey, list[_Watch]] = {}
        self._last_ts: dict[SeriesKey, int] = {}
        self._pending: dict[int, _Watch] = {}

    @property
    def series(self) -> int:
        """Series seen so far."""
        return len(self._watches)

    def _watches_of(self, key: SeriesKey) -> list[_Watch]:
        watches = self._watches.get(key)
        if watches is None:
            rules = self._index.matching(key)
            limits = self.limits.get(key)
            # A profile's limits apply unless a threshold rule of its own covers the series.
            if limits is not None and not any(r.kind == "threshold" for r in rules):
                rules.append(self._limits_rule(limits))
            watches = [_WATCHES[r.kind](r, key) for r in rules]
            self._watches[key] = watches
        return watches

    def _limits_rule(self, limits: Limits) -> Rule:
        rule = self._limit_rules.get(limits)
        if rule is None:
            p = self._policy
            rule = Rule.model_validate({
                "name": LIMITS_RULE, "kind": "threshold", "below": limits[0], "above": limits[1],
                "severity": p.severity, "notify": p.notify, "for": format_duration(p.for_ms),
                "hysteresis": p.hysteresis,
            })  # fmt: skip
            self._limit_rules[limits] = rule
        return rule

    def set_limits(self, limits: dict[SeriesKey, Limits]) -> None:
        """The device profiles' limits per series (from machines' meta); the series whose
        limits changed get their watches remade, keeping the state of those that stay."""
        if not self._policy.enabled:
            limits = {}
        changed = {
            k for k in limits.keys() | self.limits.keys() if limits.get(k) != self.limits.get(k)
        }
        self.limits = dict(limits)
        for key in changed:
            old = self._watches.pop(key, None)
            if old is None:
                continue
            saved = {w.rule.name: w.export() for w in old}
            for w in old:
                self._pending.pop(id(w), None)
            for w in self._watches_of(key):
                state = saved.get(w.rule.name)
                if state is not None:
                    w.restore(state)

    def readings(
        self,
        site: str,
        line: str,
        machine: str,
        readings: Iterable[tuple[str, int, float | int | bool | str, str]],
        now_ms: int,
    ) -> list[Transition]:
        """Evaluate one committed batch of a machine's readings (tag, ts, v, q) at `now_ms`."""
        out: list[Transition] = []
        pending = self._pending
        last_ts = self._last_ts
        late_before = now_ms - self._late_after
        for tag, ts, v, q in readings:
            key = SeriesKey(site, line, machine, tag)
            watches = self._watches_of(key)
            if not watches:
                continue
            if isinstance(v, str):
                if q != "bad":
                    continue
                value = math.nan
            else:
                value = float(v)
            previous = last_ts.get(key)
            if previous is not None and ts <= previous:
                self._out_of_order(watches, ts, value, q, out)
                continue
            last_ts[key] = ts
            late = ts < late_before
            flag = isinstance(v, bool)
            for w in watches:
                if math.isnan(value) and not isinstance(w, _Quality):
                    continue
                if flag and isinstance(w, _ZScore | _Rate):
                    continue  # a flag has no mean or rate; thresholds and quality still apply
                if w.feed(ts, value, q, late, out):
                    pending[id(w)] = w
                else:
                    pending.pop(id(w), None)
        return out

    def _out_of_order(
        self, watches: list[_Watch], ts: int, v: float, q: str, out: list[Transition]
    ) -> None:
        # Older than what the series already had: the state has moved on, so it is only
        # history. A threshold or quality breach in it is recorded, found late.
        for w in watches:
            if not isinstance(w, _Threshold | _Quality) or (
                math.isnan(v) and isinstance(w, _Threshold)
            ):
                continue
            bad, _ok, detail = w.judge(ts, v, q)
            if bad:
                oid = alert_id(w.rule.name, w.key, ts)
                out.append(Transition(oid, w.rule, "active", w.key, v, ts, True, detail))
                out.append(Transition(oid, w.rule, "cleared", w.key, v, ts, True, detail))

    def _state_watches(self, key: SeriesKey) -> list[_StateWatch]:
        watches = self._states.get(key)
        if watches is None:
            kinds = AGENT_KINDS if key.tag == AGENT_TAG else MACHINE_KINDS
            watches = [
                _StateWatch(r, key)
                for r in self.state_rules
                if r.kind in kinds
                and fnmatch.fnmatchcase(key.site, r.match.site)
                and fnmatch.fnmatchcase(key.line, r.match.line)
                and fnmatch.fnmatchcase(key.machine, r.match.machine)
            ]
            self._states[key] = watches
        return watches

    def machine_states(self, states: Iterable[MachineState], now_ms: int) -> list[Transition]:
        """`stale` and `offline` rules over the machines' judged states (`offline` also fires
        for `faulted`: either way nothing comes from the machine)."""
        out: list[Transition] = []
        for m in states:
            key = SeriesKey(m.site, m.line, m.machine, "")
            for w in self._state_watches(key):
                wanted = ("offline", "faulted") if w.rule.kind == "offline" else ("stale",)
                w.observe(m.state in wanted, m.since_ms, now_ms, f"{m.state}: {m.reason}", out)
        return out

    def agent_health(self, agents: Iterable[AgentHealth], now_ms: int) -> list[Transition]:
        """`edge` rules: an agent whose drop counter grew since its previous report, or whose
        oldest unsent reading is older than the rule's `backlog_age`."""
        out: list[Transition] = []
        for a in agents:
            key = SeriesKey(a.site, a.line, a.agent_id, AGENT_TAG)
            for w in self._state_watches(key):
                dropping = w.dropped is not None and a.dropped > w.dropped
                w.dropped = a.dropped
                limit = w.rule.backlog_age
                behind = (
                    limit is not None
                    and a.backlog_age_ms is not None
                    and (a.backlog_age_ms > limit)
                )
                since: int | None = None
                if behind:
                    assert limit is not None
                    assert a.backlog_age_ms is not None
                    # The moment the oldest unsent reading passed the limit.
                    since = a.report_ms - a.backlog_age_ms + limit
                    detail = f"oldest unsent reading {a.backlog_age_ms / 1000:.0f} s old"
                elif dropping:
                    since = a.report_ms
                    detail = f"dropped readings ({a.dropped} so far)"
                else:
                    detail = "keeping up"
                w.observe(dropping or behind, since, now_ms, detail, out)
        return out

    def events(
        self, site: str, line: str, machine: str, events: Iterable[Event], now_ms: int
    ) -> list[Transition]:
        """`event` rules over one machine's newly stored events (in time order) at `now_ms`."""
        place = (site, line, machine)
        rules = self._event_rules_of.get(place)
        if rules is None:
            rules = self._event_rules_of[place] = [
                r
                for r in self.event_rules
                if fnmatch.fnmatchcase(site, r.match.site)
                and fnmatch.fnmatchcase(line, r.match.line)
                and fnmatch.fnmatchcase(machine, r.match.machine)
            ]
        out: list[Transition] = []
        if not rules:
            return out
        late_before = now_ms - self._late_after
        for e in events:
            key = SeriesKey(site, line, machine, e.source)
            detail = f"{e.message or e.type} ({e.type} from {e.source}, severity {e.severity})"
            for rule in rules:
                held = (rule.name, site, line, machine, e.id)
                raised = self._raised.get(held)
                if e.state == "cleared":
                    # Whatever its severity now: the alarm this id raised is over.
                    if raised is not None:
                        del self._raised[held]
                        oid, late = raised
                        value = float(e.severity)
                        out.append(Transition(oid, rule, "cleared", key, value, e.ts, late, detail))
                    continue
                if e.state not in (None, "active") or raised is not None:
                    continue  # the machine's own acknowledgement, or the same alarm again
                if not _event_matches(rule, e):
                    continue
                oid = alert_id(rule.name, key, e.ts, e.id)
                late = e.ts < late_before
                self._raised[held] = (oid, late)
                if len(self._raised) > MAX_RAISED:
                    del self._raised[next(iter(self._raised))]
                out.append(
                    Transition(oid, rule, "active", key, float(e.severity), e.ts, late, detail)
                )
        return out

    def tick(self, now_ms: int) -> list[Transition]:
        """Fire pending conditions whose `for` has passed with no new sample."""
        out: list[Transition] = []
        for ident, w in list(self._pending.items()):
            if w.due(now_ms, out):
                del self._pending[ident]
        return out

    def active(self) -> int:
        """Occurrences active now."""
        watched = sum(1 for ws in self._watches.values() for w in ws if w.active_id is not None)
        return watched + len(self._raised)

    def export(self) -> dict[str, Any]:
        """Everything the engine has learnt, as JSON values, keyed by rule name per series."""
        series = []
        for key, watches in self._watches.items():
            if watches:
                states = {w.rule.name: w.export() for w in watches}
                series.append([list(key), self._last_ts.get(key), states])
        held = [
            [list(key), {w.rule.name: w.export() for w in watches}]
            for key, watches in self._states.items()
            if watches
        ]
        raised = [[*k, oid, late] for k, (oid, late) in self._raised.items()]
        return {"v": 1, "series": series, "states": held, "events": raised}

    def restore(self, snapshot: dict[str, Any]) -> None:
        """Load `export()`'s output; rules since removed are forgotten, new ones start idle."""
        for raw_key, last, states in snapshot.get("series", ()):
            key = SeriesKey(*raw_key)
            if last is not None:
                self._last_ts[key] = int(last)
            for w in self._watches_of(key):
                state = states.get(w.rule.name)
                if state is not None:
                    w.restore(state)
                    if w.active_id is None and w.since is not None and w.last_bad:
                        self._pending[id(w)] = w
        for raw_key, saved in snapshot.get("states", ()):
            for sw in self._state_watches(SeriesKey(*raw_key)):
                if sw.rule.name in saved:
                    sw.restore(saved[sw.rule.name])
        names = {r.name for r in self.event_rules}
        for rule, site, line, machine, event, oid, late in snapshot.get("events", ()):
            if rule in names:
                self._raised[(rule, site, line, machine, event)] = (oid, bool(late))
