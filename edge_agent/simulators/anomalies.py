"""Process anomalies layered over a machine's true values (pure: simulated time passed in).

| kind          | what a client sees                                                   | default |
| ------------- | -------------------------------------------------------------------- | ------- |
| spike         | value + magnitude (default half the tag's range) for a short time    | 2 s     |
| drift         | value + rate x elapsed (rate default 1 % of the range per second)    | 60 s    |
| stuck         | the value frozen at the moment the anomaly starts                    | 60 s    |
| dropout       | zero / false: the signal is lost (OPC-UA also serves status Bad)     | 10 s    |
| out_of_range  | hi + magnitude (default half the range), beyond what is plausible    | 10 s    |

Times are simulated seconds since the simulator started.

Any kind may be injected on any numeric tag (the control interface does as it is told), but not
every kind means something on every tag: `fits(kind, tag)` says which do, and the alert-quality
benchmark (bench/alerts_quality.py) draws its ground truth only from those, while still
reporting the figure over every tag. Two kinds change nothing a client can see on some tags:

- stuck on a setpoint or other holding register: a client writes it and the machine holds it,
  so it does not move by itself; frozen, it reads exactly as before (the oven's zone
  setpoints change every 30 min, the conveyor's speed only when written);
- drift on a tag whose resolution is coarser than ten seconds of the default drift (1 % of the
  range per second): a whole-number state such as a press's stroke phase (0-4: 0.4 in 10 s)
  or a compressor's load state (0-2: 0.2 in 10 s) rounds it away.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, cast, get_args

import yaml

from edge_agent.simulators.tags import LogixTag, ModbusTag, OpcuaTag, S7Tag, SimTag, Value

__all__ = ["DEFAULT_DURATION_S", "Anomaly", "AnomalyKind", "fits", "load_schedule", "resolution"]

AnomalyKind = Literal["spike", "drift", "stuck", "dropout", "out_of_range"]
ANOMALY_KINDS: tuple[str, ...] = get_args(AnomalyKind)

DEFAULT_DURATION_S: dict[str, float] = {
    "spike": 2.0,
    "drift": 60.0,
    "stuck": 60.0,
    "dropout": 10.0,
    "out_of_range": 10.0,
}


@dataclass(slots=True)
class Anomaly:
    """One anomaly on one tag of one machine over [start, start + duration) simulated seconds."""

    machine: str
    tag: str
    kind: AnomalyKind
    start: float = 0.0
    duration: float | None = None
    magnitude: float | None = None
    frozen: Value | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if self.kind not in ANOMALY_KINDS:
            raise ValueError(f"unknown anomaly kind {self.kind!r}; use one of {ANOMALY_KINDS}")
        if self.duration is None:
            self.duration = DEFAULT_DURATION_S[self.kind]

    @property
    def end(self) -> float:
        """Simulated time the anomaly stops."""
        return self.start + (self.duration or 0.0)

    def active(self, t: float) -> bool:
        """True while the anomaly applies at simulated time `t`."""
        return self.start <= t < self.end

    def apply(self, value: Value, t: float, lo: float, hi: float) -> Value:
        """The value a client sees at `t` instead of `value` (tag range [lo, hi])."""
        if isinstance(value, str):
            return value
        if self.kind == "stuck":
            if self.frozen is None:
                self.frozen = value
            return self.frozen
        if isinstance(value, bool):
            # A bool can only flip (spike) or read false (dropout); drift and range keep it.
            return (not value) if self.kind == "spike" else value and self.kind != "dropout"
        span = (hi - lo) or max(abs(float(value)), 1.0)
        if self.kind == "dropout":
            return 0
        if self.kind == "drift":
            rate = self.magnitude if self.magnitude is not None else span / 100
            return value + rate * (t - self.start)
        shift = self.magnitude if self.magnitude is not None else span / 2
        return value + shift if self.kind == "spike" else hi + shift

    def to_json(self) -> dict[str, Any]:
        """A JSON-able description for the control interface."""
        return {
            "machine": self.machine,
            "tag": self.tag,
            "kind": self.kind,
            "start": self.start,
            "duration": self.duration,
            "magnitude": self.magnitude,
        }


_WHOLE = frozenset({"int16", "uint16", "int32", "uint32", "int64", "uint64", "UInt32",
                    "byte", "int", "word", "dint", "dword", "sint"})  # fmt: skip
# Drift seconds a client must be able to see within (the alert-quality target's window).
VISIBLE_WITHIN_S = 10.0


def resolution(tag: SimTag) -> float:
    """The smallest change a client can see on the tag (0: a float, as fine as it gets)."""
    if isinstance(tag, OpcuaTag):
        if tag.type == "UInt32":
            return 1.0
        return 0.0 if tag.decimals is None else 10.0**-tag.decimals
    return abs(tag.scale) if tag.type.lower() in _WHOLE else 0.0


def fits(kind: str, tag: SimTag) -> bool:
    """Whether an anomaly of `kind` on `tag` changes what a client sees (module docstring)."""
    if tag.type.lower() in ("bool", "string", "boolean") or not tag.hi > tag.lo:
        return False
    if kind == "stuck":
        holding = isinstance(tag, ModbusTag) and tag.table == "holding"
        written = isinstance(tag, ModbusTag | S7Tag | LogixTag) and tag.writable
        return not (holding or written)
    if kind == "drift":
        return (tag.hi - tag.lo) / 100 * VISIBLE_WITHIN_S >= resolution(tag)
    return kind in ANOMALY_KINDS


def load_schedule(path: Path) -> list[Anomaly]:
    """Read an anomaly schedule: a YAML list of {at, machine, tag, kind, duration?, magnitude?}."""
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8")) or []
    except yaml.YAMLError as exc:
        raise ValueError(f"not valid YAML: {exc}") from exc
    items = doc.get("anomalies", []) if isinstance(doc, dict) else doc
    if not isinstance(items, list):
        raise ValueError(  # noqa: TRY004 - a config error, not a programming error
            "expected a list of anomalies (or a mapping with 'anomalies:')"
        )
    out: list[Anomaly] = []
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise ValueError(f"anomalies[{i}] is not a mapping")  # noqa: TRY004
        unknown = set(item) - {"at", "machine", "tag", "kind", "duration", "magnitude"}
        if unknown:
            raise ValueError(f"anomalies[{i}] has unknown keys {sorted(unknown)}")
        try:
            out.append(
                Anomaly(
                    machine=str(item["machine"]),
                    tag=str(item["tag"]),
                    kind=cast(AnomalyKind, item["kind"]),
                    start=float(item.get("at", 0.0)),
                    duration=None if item.get("duration") is None else float(item["duration"]),
                    magnitude=None if item.get("magnitude") is None else float(item["magnitude"]),
                )
            )
        except KeyError as exc:
            raise ValueError(f"anomalies[{i}] is missing {exc.args[0]!r}") from exc
    return out
