"""Coalesce points into the fewest Modbus reads, and learn which spans a device rejects (pure).

Limits per request come from the Modbus Application Protocol: at most 125 registers for
function codes 3 and 4 (§6.3, §6.4) and at most 2000 bits for function codes 1 and 2
(§6.1, §6.2). Small gaps between points are read and thrown away because one round trip
costs far more than a few extra registers — unless the device has refused such a span before.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from edge_agent.drivers.modbus.codec import register_count
from edge_agent.drivers.modbus.points import ModbusPoint, Table

__all__ = [
    "DEFAULT_MAX_GAP",
    "MAX_BITS",
    "MAX_REGISTERS",
    "Learned",
    "ReadRequest",
    "plan_reads",
    "point_span",
    "split_request",
]

MAX_REGISTERS = 125  # Modbus Application Protocol §6.3/§6.4
MAX_BITS = 2000  # Modbus Application Protocol §6.1/§6.2
DEFAULT_MAX_GAP = 8


@dataclass(frozen=True, slots=True)
class ReadRequest:
    """One Modbus read: `count` registers (or bits) of `table` from `address`, and its points."""

    table: Table
    address: int
    count: int
    poll_ms: int
    points: tuple[ModbusPoint, ...]
    # (start, stop) of each point in the response, computed once rather than on every poll.
    slices: tuple[tuple[int, int], ...] = field(init=False, repr=False, compare=False)
    # When every point is an unscaled uint16 of one register in word order: their names and
    # where each sits in the response. Such a register *is* the value, so a poll makes its
    # samples without decoding each (the commonest request; the driver's hot path).
    plain: tuple[tuple[str, ...], tuple[int, ...]] | None = field(
        init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        slices = []
        for p in self.points:
            start = p.address - self.address
            slices.append((start, start + point_span(p)))
        object.__setattr__(self, "slices", tuple(slices))
        plain = all(map(_plain_register, self.points)) and bool(self.points)
        object.__setattr__(
            self,
            "plain",
            (tuple(p.name for p in self.points), tuple(start for start, _ in slices))
            if plain
            else None,
        )

    @property
    def end(self) -> int:
        """First address after the request."""
        return self.address + self.count

    def slice_for(self, point: ModbusPoint) -> tuple[int, int]:
        """Where `point`'s registers sit in this request's response, as (start, stop)."""
        start = point.address - self.address
        return start, start + point_span(point)


@dataclass(slots=True)
class Learned:
    """What a device taught us by rejecting reads (exception 1, 2 or 3).

    `bad` points are read alone, so a request never again spans them; a `cut` at (table, a)
    forbids any request that holds both a-1 and a, for a rejected gap between good points.
    """

    bad: set[str] = field(default_factory=set)
    cuts: set[tuple[str, int]] = field(default_factory=set)

    def mark_bad(self, point: ModbusPoint) -> None:
        """Remember that the device rejects reading `point` at all."""
        self.bad.add(point.name)

    def mark_good(self, point: ModbusPoint) -> None:
        """A lone read of a bad point succeeded: coalesce it again."""
        self.bad.discard(point.name)

    def cut(self, table: str, address: int) -> None:
        """Never read across the boundary just below `address` again."""
        self.cuts.add((table, address))


def point_span(point: ModbusPoint) -> int:
    """Registers (or bits) a point occupies."""
    return register_count(point.type, point.length)


def _plain_register(point: ModbusPoint) -> bool:
    """Whether the register holding `point` is its value as it stands (see `ReadRequest.plain`)."""
    return (
        point.type == "uint16"
        and point.table in ("holding", "input")
        and point.bit is None
        # A 16-bit value honours only the byte swap (codec.py).
        and point.order in ("ABCD", "CDAB")
        and point.scale == 1.0
        and point.offset == 0.0
    )


def _limit(table: Table, max_registers: int, max_bits: int) -> int:
    return max_bits if table in ("coil", "discrete") else max_registers


def plan_reads(
    points: Iterable[ModbusPoint],
    *,
    max_gap: int = DEFAULT_MAX_GAP,
    learned: Learned | None = None,
    max_registers: int = MAX_REGISTERS,
    max_bits: int = MAX_BITS,
) -> list[ReadRequest]:
    """Fewest requests per (table, poll interval) covering every point within the limits."""
    learned = learned or Learned()
    groups: dict[tuple[Table, int], list[ModbusPoint]] = {}
    for point in points:
        groups.setdefault((point.table, point.poll_ms), []).append(point)
    requests: list[ReadRequest] = []
    for (table, poll_ms), members in sorted(groups.items()):
        limit = _limit(table, max_registers, max_bits)
        # Bad points are fences: nothing may be read across them, so they become cuts too.
        fences = {a for t, a in learned.cuts if t == table}
        solo = [p for p in members if p.name in learned.bad]
        for p in solo:
            fences.update((p.address, p.address + point_span(p)))
            requests.append(ReadRequest(table, p.address, point_span(p), poll_ms, (p,)))
        ordered = sorted(
            (p for p in members if p.name not in learned.bad),
            key=lambda p: (p.address, point_span(p)),
        )
        requests.extend(
            _coalesce(
                table,
                poll_ms=poll_ms,
                ordered=ordered,
                limit=limit,
                max_gap=max_gap,
                fences=fences,
            )
        )
    return requests


def _coalesce(
    table: Table,
    *,
    poll_ms: int,
    ordered: list[ModbusPoint],
    limit: int,
    max_gap: int,
    fences: set[int],
) -> list[ReadRequest]:
    out: list[ReadRequest] = []
    current: list[ModbusPoint] = []
    start = end = 0
    for p in ordered:
        p_end = p.address + point_span(p)
        if current:
            new_end = max(end, p_end)
            crosses = any(start < f < new_end for f in fences) if fences else False
            if p.address - end <= max_gap and new_end - start <= limit and not crosses:
                current.append(p)
                end = new_end
                continue
            out.append(ReadRequest(table, start, end - start, poll_ms, tuple(current)))
        current, start, end = [p], p.address, p_end
    if current:
        out.append(ReadRequest(table, start, end - start, poll_ms, tuple(current)))
    return out


def split_request(request: ReadRequest) -> tuple[ReadRequest, ReadRequest]:
    """Two requests covering a rejected one's points, divided at its widest gap between points.

    A rejected unmapped gap is the commonest cause, so splitting there first usually finds it
    in one step; without gaps the points are halved.
    """
    points = sorted(request.points, key=lambda p: (p.address, point_span(p)))
    if len(points) < 2:
        raise ValueError("a request for one point cannot be split")
    best_index, best_gap, reach = len(points) // 2, 0, 0
    for index in range(1, len(points)):
        reach = max(reach, points[index - 1].address + point_span(points[index - 1]))
        gap = points[index].address - reach
        if gap > best_gap:
            best_index, best_gap = index, gap
    return _request_for(request, points[:best_index]), _request_for(request, points[best_index:])


def _request_for(request: ReadRequest, points: list[ModbusPoint]) -> ReadRequest:
    start = min(p.address for p in points)
    end = max(p.address + point_span(p) for p in points)
    return ReadRequest(request.table, start, end - start, request.poll_ms, tuple(points))
