"""A plant: N named machines plus their anomalies, sampled at a simulated time (pure)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import partial

from edge_agent.simulators.anomalies import Anomaly
from edge_agent.simulators.machines import MACHINE_TYPES, Machine
from edge_agent.simulators.plc_values import quantize as plc_quantize
from edge_agent.simulators.registers import quantizer
from edge_agent.simulators.tags import ModbusTag, OpcuaTag, SimTag, Value

__all__ = ["Plant", "PlantSnapshot", "machine_names"]

_UINT32_MAX = 2**32 - 1


def machine_names(
    count: int, extra: Sequence[type[Machine]] = ()
) -> list[tuple[str, type[Machine]]]:
    """Names and types of a plant of `count` machines: press-01, conveyor-01, … round-robin,
    then one of each `extra` type (the PLC-served machines: s7-press-01, logix-conveyor-01)."""
    out = []
    for i in range(count):
        cls = MACHINE_TYPES[i % len(MACHINE_TYPES)]
        out.append((f"{cls.prefix}-{i // len(MACHINE_TYPES) + 1:02d}", cls))
    out += [(f"{cls.prefix}-01", cls) for cls in extra]
    return out


def _exact(tag: SimTag) -> Callable[[Value], Value]:
    if isinstance(tag, ModbusTag):
        return quantizer(tag)
    if isinstance(tag, OpcuaTag):
        return partial(_opcua_value, tag)
    return partial(plc_quantize, tag)


@dataclass(frozen=True, slots=True)
class PlantSnapshot:
    """What the plant serves at one instant: values per machine and tag, and tags reading bad."""

    t: float
    values: dict[str, dict[str, Value]]
    bad: frozenset[tuple[str, str]]


def _opcua_value(tag: OpcuaTag, value: Value) -> Value:
    if tag.type == "Double":
        return float(value) if tag.decimals is None else round(float(value), tag.decimals)
    if tag.type == "UInt32":
        return max(0, min(_UINT32_MAX, round(float(value))))
    if tag.type == "Boolean":
        return bool(value)
    return str(value)


class Plant:
    """The simulated machines of one run, deterministic in (seed, simulated time, anomalies)."""

    def __init__(
        self,
        machines: int,
        seed: int,
        anomalies: Iterable[Anomaly] = (),
        extra: Sequence[type[Machine]] = (),
    ) -> None:
        if machines < 1:
            raise ValueError("a plant needs at least one machine")
        self.seed = seed
        self.machines: dict[str, Machine] = {
            name: cls(name, seed) for name, cls in machine_names(machines, extra)
        }
        # Per machine: how each served value is made exact (register quantisation, a PLC
        # type's width, the OPC-UA type).
        self._exact: dict[str, list[tuple[str, Callable[[Value], Value]]]] = {
            name: [(t.name, _exact(t)) for t in m.tags] for name, m in self.machines.items()
        }
        self.anomalies: list[Anomaly] = []
        for anomaly in anomalies:
            self.add_anomaly(anomaly)

    def machine(self, name: str) -> Machine:
        """One machine; ValueError naming the machines when there is no such one."""
        try:
            return self.machines[name]
        except KeyError:
            raise ValueError(
                f"no machine {name!r}; machines are {', '.join(self.machines)}"
            ) from None

    def tag(self, machine: str, tag: str) -> SimTag:
        """The spec of one tag; ValueError naming what exists when it does not."""
        m = self.machine(machine)
        for spec in m.tags:
            if spec.name == tag:
                return spec
        names = ", ".join(s.name for s in m.tags)
        raise ValueError(f"{machine} has no tag {tag!r}; its tags are {names}")

    def add_anomaly(self, anomaly: Anomaly) -> None:
        """Schedule an anomaly after checking its machine and tag exist."""
        spec = self.tag(anomaly.machine, anomaly.tag)
        if spec.type in ("string", "String"):
            raise ValueError(f"{anomaly.machine}.{anomaly.tag} is a string: no anomalies on it")
        self.anomalies.append(anomaly)

    def clear_anomalies(self, machine: str | None = None, tag: str | None = None) -> int:
        """Remove anomalies matching machine and tag (None matches all); returns how many."""
        keep = [
            a
            for a in self.anomalies
            if (machine is not None and a.machine != machine) or (tag is not None and a.tag != tag)
        ]
        removed = len(self.anomalies) - len(keep)
        self.anomalies = keep
        return removed

    def sample(self, t: float) -> PlantSnapshot:
        """Advance every machine to simulated time `t` and return what the servers serve."""
        values: dict[str, dict[str, Value]] = {}
        for name, m in self.machines.items():
            m.advance_to(t)
            values[name] = m.values()
        bad: set[tuple[str, str]] = set()
        # Anomalies that ended long ago cost nothing: drop them as simulated time passes.
        self.anomalies = [a for a in self.anomalies if a.end > t]
        for a in self.anomalies:
            if a.active(t):
                spec = self.tag(a.machine, a.tag)
                row = values[a.machine]
                row[a.tag] = a.apply(row[a.tag], t, spec.lo, spec.hi)
                if a.kind == "dropout" and isinstance(spec, OpcuaTag):
                    bad.add((a.machine, a.tag))
        for name, exact in self._exact.items():
            row = values[name]
            for tag, fn in exact:
                row[tag] = fn(row[tag])
        return PlantSnapshot(t, values, frozenset(bad))
