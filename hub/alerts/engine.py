"""The alert engine: rules over readings, one small state machine per (rule, series). Pure.

Every watch runs the same machine: *idle* → (condition bad) *pending* since the first bad sample
→ (bad for `for`) *active* → (condition ok, past the hysteresis) *cleared*, which is idle again;
a re-fire is a new occurrence. What "bad" and "ok" mean is the rule kind's business:

- threshold: above `above` / below `below`; ok only back past the limit by `hysteresis`;
- rate: |change per second (or minute)| over `window` above `above`;
- zscore: the series' own normal over `window`, judged three ways (`_ZScore`): its level
  (|x − mean| / deviation ≥ `z`), its change per second (far beyond any it has made lately: a
  drift, a jump) and its runs (frozen far longer than it ever holds a value: stuck); what fires
  is not learnt, so an anomaly does not teach the model that it is normal;
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
# How long a machine stays quiet to zscore rules after its last fault flag clears (the motor of
# a conveyor that was jammed runs up again).
FAULT_GRACE_MS = 10_000
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
    """The series' own normal, learnt per series in O(1) per sample and judged three ways
    (docs/alerts.md "Anomalies"):

    - level: |x − mean| / deviation ≥ `z`, against a time-decayed mean and variance over
      `window` (exact running moments until the window has filled). A value past the limit is
      clamped to it before it is learnt, so an anomaly (a drift included) does not drag the
      baseline along, while a lasting change of level is learnt over about one window.
      Continuous signals only: a step signal's steps (setpoints, states) are operations.
    - change: the change per second `z` deviations from its own mean *and* more than
      `CHANGE_MARGIN` times the largest (normal) change the series has made lately: a drift or
      a jump on a signal that never moves that fast (a temperature, a counter), whatever its
      level. The sample that brings the value back where it was ends an anomaly, it is none.
    - runs: a value frozen (a stuck sensor, a dead input) for more than twice the longest
      normal run the series has had lately and that its repeat rate makes all but impossible
      (p < `RUN_P`); a step signal changing for as long (a setpoint that starts to wander).
      Repeats at the ends of the range the series has shown are rests (a motor stopped, a
      controller saturated, an axis at home): a series that rests there is not stuck there,
      and a series that holds values anyway (`PAUSES` samples or more) is not judged stuck.
      A counter that counts at a regular pace (its longest pause lately at most about twice
      its mean pause: a press's strokes, not a conveyor's items) is stuck once it has not
      counted for a quarter longer than its longest pause lately (at least one sample more).

    What an anomaly does is not learnt: not its changes, its runs or its range (a run that
    fired counts neither as a normal run nor towards `PAUSES`, so a second stuck sensor fires
    as fast as the first). Values past
    the profile's limits are the limits rule's business and are not learnt at all. "Lately" is
    the current and the previous `window` (two numbers per maximum, forgotten after one to two
    windows).
    """

    __slots__ = (
        "arrivals", "bucket", "dmax", "eq", "falls", "held", "hi",
        "last_ts", "last_v", "lo", "long_moved", "long_rest", "long_same", "mean", "moved", "n",
        "plausible", "ref", "ref_ts", "rises", "rmean", "rvar", "same", "steady", "var",
    )  # fmt: skip

    CONTINUOUS = 0.2  # more repeats than this: a step signal
    RUN_P = 1e-6
    CHANGE_MARGIN = 2.0
    STEP_MARGIN = 4.0
    COUNTS = 10  # rises (and no falls) that make a counter
    PAUSES = 3  # a series that has held a value this long away from rests is not judged stuck

    def __init__(self, rule: Rule, key: SeriesKey) -> None:
        super().__init__(rule, key)
        self.plausible: Limits = (None, None)  # the profile's limits, if the series has them
        self.ref, self.ref_ts = 0.0, 0  # the last sample judged normal
        self.mean = 0.0
        self.var = 0.0
        self.n = 0
        self.last_ts = 0
        self.last_v = math.nan
        self.rmean = 0.0
        self.rvar = 0.0
        self.steady = 0.0  # share of samples equal to the one before
        self.eq = 0.0  # the same away from rests: how likely a run is
        self.falls = [0, 0]  # samples lower than the one before (none: a counter)
        self.rises = 0  # samples higher than the one before (up to COUNTS)
        self.arrivals = 0  # returns to an end of the range without resting there (to PAUSES)
        self.same = 0  # samples in a row equal to the one before
        self.moved = 0  # samples in a row different from the one before
        # [current window, previous window] maxima: |change − its mean|, the longest runs of
        # repeats (away from and at the range's ends) and of changes, the range's ends; falls.
        self.bucket = 0
        self.dmax = [0.0, 0.0]
        self.long_same = [0, 0]
        self.long_rest = [0, 0]
        self.long_moved = [0, 0]
        self.held = [0, 0]  # the longest runs of repeats away from rests, of normal samples
        self.lo = [math.inf, math.inf]
        self.hi = [-math.inf, -math.inf]

    def judge(self, ts: int, v: float, q: str) -> tuple[bool, bool, str]:
        r = self.rule
        window = r.window or 3_600_000
        last_v = self.last_v
        repeat = v == last_v
        same_was, moved_was = self.same, self.moved
        low, high = self.plausible
        if (low is not None and v < low) or (high is not None and v > high):
            # Implausible (past the profile's limits): the limits rule's business, and never
            # learnt as the series' normal.
            return False, False, f"{v:g} outside the profile's limits"
        self.same = same_was + 1 if repeat else 0
        self.moved = 0 if repeat else moved_was + 1
        if self.n == 0:
            self.mean, self.n, self.last_ts, self.last_v = v, 1, ts, v
            self.bucket = ts // window
            self.lo[0] = self.hi[0] = v
            return False, True, "learning"
        if ts // window != self.bucket:
            self._next_window(ts // window)
        self._runs_ended(v, repeat, same_was, moved_was)
        rest = self._rest(v)
        rate = (v - last_v) * 1000.0 / max(ts - self.last_ts, 1)
        x, dx = v, rate
        bad, ok, detail = False, True, "learning"
        if self.n >= r.min_samples:
            bad, ok, detail, x, dx = self._judge(ts, v, rate, rest)
        alpha = 1.0 - math.exp(-max(ts - self.last_ts, 0) / window)
        self.n += 1
        alpha = max(alpha, 1.0 / self.n)  # exact running moments while the window fills
        d = x - self.mean
        self.mean += alpha * d
        self.var = (1.0 - alpha) * (self.var + alpha * d * d)
        dev = rate - self.rmean
        d = dx - self.rmean
        self.rmean += alpha * d
        self.rvar = (1.0 - alpha) * (self.rvar + alpha * d * d)
        if not bad:
            self.ref, self.ref_ts = v, ts
            # What fires is not learnt, nor the sample that ends it (its change undoes the
            # anomaly): a drift keeps its alert while it lasts.
            if not self.last_bad:
                self._learn(v, last_v, repeat=repeat, rest=rest, dev=dev, alpha=alpha)
        self.last_ts = ts
        self.last_v = v
        return bad, ok, detail

    def _judge(
        self, ts: int, v: float, rate: float, rest: bool
    ) -> tuple[bool, bool, str, float, float]:
        """(bad, ok, detail, value to learn, change to learn) once `min_samples` are in."""
        r = self.rule
        limit = r.z
        mean = self.mean
        bad, ok, detail = False, True, f"{v:g} within its normal"
        std = max(math.sqrt(self.var), 1e-6 * abs(mean), 1e-9)
        rstd = max(math.sqrt(self.rvar), 1e-9)
        step = self.steady >= self.CONTINUOUS
        x = v
        if not step:
            z = (v - mean) / std
            bad = abs(z) >= limit
            ok = abs(z) < limit - max(r.hysteresis, 0.5)
            if bad:
                detail = f"{v:g} is {z:+.1f}σ from {mean:g}"
            x = min(max(v, mean - limit * std), mean + limit * std)
        dev = rate - self.rmean
        seen = max(self.dmax)
        back = self.CHANGE_MARGIN * (seen + abs(self.rmean)) * (ts - self.ref_ts) / 1000.0
        # A step signal's steps are operations: only one far beyond any it has made counts
        # (a counter's by the usual margin: it counts in ones and twos).
        margin = self.CHANGE_MARGIN if not step or self._counter() else self.STEP_MARGIN
        if (
            seen > 0  # it has been seen to change
            and abs(dev) > margin * seen
            and abs(dev) >= limit * rstd
            and not (self.last_bad and abs(v - self.ref) <= back)  # an anomaly's end
        ):
            bad, ok = True, False
            detail = f"{v:g} changing {rate:+.3g}/s, normally {self.rmean:+.3g} ± {seen:.3g}/s"
        dx = min(max(rate, self.rmean - limit * rstd), self.rmean + limit * rstd)
        longest = max(self.held)
        if (
            self.same >= 3
            # At an end of its range: judged only on a series that has passed it often
            # without ever resting there (a ram at the top of every stroke).
            and not (rest and (max(self.long_rest) > 0 or self.arrivals < self.PAUSES))
            and max(self.held) < self.PAUSES  # it holds values anyway: not judged
            and self.same > 2 * longest + 1
            and max(self.eq, 1e-3) ** self.same < self.RUN_P
        ):
            bad, ok = True, False
            detail = f"{v:g} unchanged for {self.same + 1} samples"
        elif (
            self.same > longest > 0
            and self._counter()
            and longest <= 2 * self.steady / max(1.0 - self.steady, 1e-3)  # regular pauses
            and self.same > longest + max(1, longest // 4)
        ):
            # A counter counts at its own pace: stopped well past its longest pause lately.
            bad, ok = True, False
            detail = f"{v:g} has not counted for {self.same + 1} samples, at most {longest + 1}"
        elif (
            step
            and self.moved >= 2
            and self.moved > 2 * max(self.long_moved) + 1
            and max(1.0 - self.steady, 1e-3) ** self.moved < self.RUN_P
        ):
            bad, ok = True, False
            detail = f"{v:g} changed {self.moved} samples in a row, normally steady"
        return bad, ok, detail, x, dx

    def _next_window(self, bucket: int) -> None:
        """The current window's maxima become the previous window's."""
        keep = bucket == self.bucket + 1
        self.dmax = [0.0, self.dmax[0] if keep else 0.0]
        self.long_same = [0, self.long_same[0] if keep else 0]
        self.long_rest = [0, self.long_rest[0] if keep else 0]
        self.long_moved = [0, self.long_moved[0] if keep else 0]
        self.held = [0, self.held[0] if keep else 0]
        self.falls = [0, self.falls[0] if keep else 0]
        self.lo = [math.inf, self.lo[0] if keep else math.inf]
        self.hi = [-math.inf, self.hi[0] if keep else -math.inf]
        self.bucket = bucket

    def _runs_ended(self, v: float, repeat: bool, same_was: int, moved_was: int) -> None:
        """A run that just ended is the series' own from now on; one that fired only raises
        the bar it passed, so a pattern that recurs is learnt after a few (the bar doubling
        each time), while another stuck sensor later is still caught."""
        if not repeat and same_was > 0:
            lo, hi = min(*self.lo, v), max(*self.hi, v)  # the range this sample completes
            at_end = not self._counter() and self.last_v in (lo, hi)
            longest = self.long_rest if at_end else self.long_same
            if same_was > longest[0]:
                bar = 2 * max(longest) + 1
                longest[0] = min(same_was, bar) if self.last_bad else same_was
            if not at_end and not self.last_bad:
                self.held[0] = max(self.held[0], same_was)
        if repeat and moved_was > self.long_moved[0]:
            bar = 2 * max(self.long_moved) + 1
            self.long_moved[0] = min(moved_was, bar) if self.last_bad else moved_was

    def _learn(
        self, v: float, last_v: float, *, repeat: bool, rest: bool, dev: float, alpha: float
    ) -> None:
        """Learn a normal sample's change, repeat rate and range."""
        if not repeat:
            self.dmax[0] = max(self.dmax[0], abs(dev))
        self.steady += alpha * ((1.0 if repeat else 0.0) - self.steady)
        if not rest:
            self.eq += alpha * ((1.0 if repeat else 0.0) - self.eq)
        elif not repeat and self.arrivals < self.PAUSES and v in (min(self.lo), max(self.hi)):
            self.arrivals += 1  # back at an end it had reached before
        if v < last_v:
            self.falls[0] += 1
        elif v > last_v and self.rises < self.COUNTS:
            self.rises += 1
        self.lo[0] = min(self.lo[0], v)
        self.hi[0] = max(self.hi[0], v)

    def _rest(self, v: float) -> bool:
        """At an end of the range the series has shown (a counter's top is where it is)."""
        lo, hi = min(self.lo), max(self.hi)
        return hi > lo and not self._counter() and (v <= lo or v >= hi)

    def _counter(self) -> bool:
        """It has gone up (`COUNTS` times) and never down lately: a counter, an hour meter."""
        return self.falls == [0, 0] and self.rises >= self.COUNTS

    def export(self) -> list[Any]:
        nan = math.isnan(self.last_v)
        return [*super().export(), self.mean, self.var, self.n, self.last_ts,
                None if nan else self.last_v, self.rmean, self.rvar, self.eq,
                self.falls, self.same, self.moved, self.bucket, self.dmax, self.long_same,
                self.long_rest, self.long_moved, [_finite(x) for x in self.lo],
                [_finite(x) for x in self.hi], self.ref, self.ref_ts, self.arrivals,
                self.rises, self.steady, self.held]  # fmt: skip

    def restore(self, state: list[Any]) -> None:
        super().restore(state)
        if len(state) != 28:
            return  # a checkpoint of an earlier model: learn this series afresh
        (self.mean, self.var, self.n, self.last_ts, last_v, self.rmean, self.rvar,
         self.eq, falls, self.same, self.moved, self.bucket, dmax, long_same, long_rest,
         long_moved, lo, hi, self.ref, self.ref_ts, self.arrivals, self.rises,
         self.steady, held) = state[4:28]  # fmt: skip
        self.last_v = math.nan if last_v is None else float(last_v)
        self.dmax = [float(x) for x in dmax]
        self.long_same = [int(x) for x in long_same]
        self.long_rest = [int(x) for x in long_rest]
        self.falls = [int(x) for x in falls]
        self.long_moved = [int(x) for x in long_moved]
        self.held = [int(x) for x in held]
        self.lo = [math.inf if x is None else float(x) for x in lo]
        self.hi = [-math.inf if x is None else float(x) for x in hi]


def _finite(x: float) -> float | None:
    """JSON has no infinity: an empty maximum is written as null."""
    return x if math.isfinite(x) else None


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
        # zscore rules' `quiet_while` flag globs, compiled once per distinct list; per machine
        # and list: the flags true now and until when the machine stays quiet after the last
        # one cleared.
        self._quiet: dict[tuple[str, ...], re.Pattern[str]] = {
            r.quiet_while: re.compile("|".join(fnmatch.translate(p) for p in r.quiet_while))
            for r in self.rules
            if r.kind == "zscore" and r.quiet_while
        }
        self._faults: dict[tuple[str, str, str, tuple[str, ...]], tuple[set[str], int]] = {}

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
            for w in watches:
                if isinstance(w, _ZScore) and limits is not None:
                    w.plausible = limits
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
        faults = self._faults
        if self._quiet:
            readings = list(readings)
            self._fault_flags(site, line, machine, readings)
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
                if (flag and isinstance(w, _ZScore | _Rate)) or (faults and self._faulted(w, ts)):
                    # A flag has no mean or rate (thresholds and quality still apply); a
                    # machine that flags a fault of its own is not judged by z-scores.
                    continue
                if w.feed(ts, value, q, late, out):
                    pending[id(w)] = w
                else:
                    pending.pop(id(w), None)
        return out

    def _faulted(self, w: _Watch, ts: int) -> bool:
        """A zscore watch's machine flags a fault of its own at `ts` (or did just before)."""
        if not isinstance(w, _ZScore):
            return False
        k = w.key
        fault = self._faults.get((k.site, k.line, k.machine, w.rule.quiet_while))
        return fault is not None and (bool(fault[0]) or ts < fault[1])

    def _fault_flags(
        self,
        site: str,
        line: str,
        machine: str,
        readings: list[tuple[str, int, float | int | bool | str, str]],
    ) -> None:
        """Note the machine's fault flags in a batch before its readings are judged: a flag set
        in this batch quiets the whole batch (the stalled motor's current arrives with it)."""
        for tag, ts, v, _q in readings:
            if not isinstance(v, bool):
                continue
            for names, pattern in self._quiet.items():
                if not pattern.match(tag):
                    continue
                key = (site, line, machine, names)
                flags, until = self._faults.get(key, (set(), 0))
                if v:
                    flags.add(tag)
                elif tag in flags:
                    flags.discard(tag)
                    until = ts + FAULT_GRACE_MS
                self._faults[key] = (flags, until)

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
        faults = [
            [site, line, machine, list(names), sorted(flags), until]
            for (site, line, machine, names), (flags, until) in self._faults.items()
        ]
        return {"v": 1, "series": series, "states": held, "events": raised, "faults": faults}

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
        for site, line, machine, globs, flags, until in snapshot.get("faults", ()):
            if tuple(globs) in self._quiet:
                self._faults[(site, line, machine, tuple(globs))] = (set(flags), int(until))
