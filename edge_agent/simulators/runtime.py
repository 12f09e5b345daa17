"""The running simulator: plant + Modbus, OPC-UA, S7 and EtherNet/IP servers + control
interface + truth file.

Start it in-process (tests, the demo) as an async context manager:

    async with Simulator(SimulatorOptions(machines=5, modbus_port=0, opcua_port=0)) as sim:
        sim.endpoints()          # where each machine listens
        await sim.next_tick()    # values served are current as of this tick
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import socket
import time
from collections.abc import Coroutine
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Self, cast

from pymodbus.constants import ExcCodes

from edge_agent.simulators.anomalies import Anomaly
from edge_agent.simulators.control import ControlServer
from edge_agent.simulators.enip_server import ENIP_SLOT, LogixDevice, cpppo_missing
from edge_agent.simulators.faults import DEFAULT_FAULT_S, FAULT_KINDS, Fault, FaultBook, FaultKind
from edge_agent.simulators.machines import LogixConveyor, Machine, S7Press
from edge_agent.simulators.modbus_server import UNIT_ID, ModbusDevice
from edge_agent.simulators.opcua_server import OpcuaHost, browse_path, node_id
from edge_agent.simulators.plant import Plant
from edge_agent.simulators.plc_values import quantize as plc_quantize
from edge_agent.simulators.registers import quantize
from edge_agent.simulators.s7_server import S7_RACK, S7_SLOT, S7Device
from edge_agent.simulators.tags import LogixTag, ModbusTag, OpcuaTag, S7Tag, Value
from edge_agent.simulators.truth import TruthRow, TruthWriter

__all__ = ["Simulator", "SimulatorOptions", "TickStats"]

_MISSING = object()


@dataclass(frozen=True, slots=True)
class SimulatorOptions:
    """How to run the simulator; ports 0 mean "any free port" (tests)."""

    machines: int = 5
    seed: int = 0
    host: str = "127.0.0.1"
    modbus_port: int = 5020  # Modbus machine k (0-based) listens on modbus_port + k
    opcua_port: int = 4840
    control_port: int | None = 7020  # None: no control interface
    speed: float = 1.0
    tick_s: float = 0.1
    anomalies: tuple[Anomaly, ...] = ()
    truth: Path | None = None
    opcua_cert_dir: Path | None = None  # also serve secured OPC-UA with the certificate kept here
    s7_port: int | None = None  # serve one S7 machine (s7-press-01) here; None: none
    enip_port: int | None = None  # serve one Logix machine (logix-conveyor-01) here; None: none

    def plc_types(self) -> tuple[type[Machine], ...]:
        """The PLC-served machine types these options add after the round-robin ones."""
        return tuple(
            cls
            for cls, port in ((S7Press, self.s7_port), (LogixConveyor, self.enip_port))
            if port is not None
        )


@dataclass(slots=True)
class TickStats:
    """How well the tick loop keeps up: the scale figure comes from here."""

    ticks: int = 0
    late_ticks: int = 0  # ticks that started more than one tick period late
    busy_s: float = 0.0  # wall time inside ticks (includes preemption by other processes)
    cpu_s: float = 0.0  # CPU time inside ticks
    max_tick_s: float = 0.0
    started: float = field(default_factory=time.monotonic)

    def to_json(self) -> dict[str, Any]:
        """A JSON-able summary."""
        elapsed = max(time.monotonic() - self.started, 1e-9)
        return {
            "ticks": self.ticks,
            "late_ticks": self.late_ticks,
            "mean_tick_ms": round(1000 * self.busy_s / max(self.ticks, 1), 3),
            "mean_tick_cpu_ms": round(1000 * self.cpu_s / max(self.ticks, 1), 3),
            "max_tick_ms": round(1000 * self.max_tick_s, 3),
            "busy_fraction": round(self.busy_s / elapsed, 4),
        }


def _free_port(host: str) -> int:
    # asyncua advertises its endpoint URL, so it needs the real port before it binds.
    with socket.socket() as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


# What an `exception` fault answers with unless told, with a tag and without one: an S7 read
# item's return code (5: address out of range; 3: access denied, as with PUT/GET not allowed)
# and a CIP general status (5: path destination unknown; 2: resource unavailable).
_EXCEPTION_CODES = {"s7": (5, 3), "enip": (5, 2)}


class Simulator:
    """The simulated plant serving over Modbus TCP, OPC-UA, S7 and EtherNet/IP until the
    context exits."""

    def __init__(self, options: SimulatorOptions) -> None:
        if options.speed <= 0:
            raise ValueError("--speed must be positive")
        if options.enip_port is not None and (why := cpppo_missing()):
            raise ValueError(why)
        self.options = options
        self.plant = Plant(
            options.machines, options.seed, options.anomalies, extra=options.plc_types()
        )
        self.faults = FaultBook()
        self.stats = TickStats()
        self.devices: dict[str, ModbusDevice] = {}
        for name, m in self.plant.machines.items():
            if m.protocol == "modbus":
                tags = tuple(t for t in m.tags if isinstance(t, ModbusTag))
                self.devices[name] = ModbusDevice(
                    name, tags, self.faults, on_write=functools.partial(self._written, name)
                )
        # The PLC-served machines, one server each (S7: in-process; Logix: cpppo's process).
        self.plcs: dict[str, S7Device | LogixDevice] = {}
        for name, m in self.plant.machines.items():
            if m.protocol == "s7":
                s7_tags = tuple(t for t in m.tags if isinstance(t, S7Tag))
                self.plcs[name] = S7Device(name, s7_tags, self.faults)
            elif m.protocol == "enip":
                logix_tags = tuple(t for t in m.tags if isinstance(t, LogixTag))
                self.plcs[name] = LogixDevice(
                    name, logix_tags, self.faults, on_write=functools.partial(self._written, name)
                )
        opcua_machines = [m for m in self.plant.machines.values() if m.protocol == "opcua"]
        self.opcua = (
            OpcuaHost(opcua_machines, options.host, 0, options.opcua_cert_dir)
            if opcua_machines
            else None
        )
        self.control: ControlServer | None = None
        self.truth: TruthWriter | None = None
        self._last: dict[str, dict[str, Any]] = {name: {} for name in [*self.devices, *self.plcs]}
        self._t0 = 0.0
        self._stack = AsyncExitStack()
        self._tick_task: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._tick_event = asyncio.Event()

    async def __aenter__(self) -> Self:
        opts = self.options
        try:
            if opts.truth is not None:
                self.truth = await self._stack.enter_async_context(TruthWriter(opts.truth))
            self._t0 = time.monotonic()
            self.stats = TickStats()
            if self.opcua is not None:
                self.opcua.port = opts.opcua_port or _free_port(opts.host)
                await self.opcua.build()
                self._stack.push_async_callback(self.opcua.stop)
            # The first tick fills every register image and OPC-UA value before anything
            # listens, so no client ever reads a placeholder.
            await self._tick()
            if self.opcua is not None:
                await self.opcua.serve()
            for k, device in enumerate(self.devices.values()):
                await device.start(opts.host, opts.modbus_port + k if opts.modbus_port else 0)
                self._stack.push_async_callback(device.stop)
            for plc in self.plcs.values():
                port = opts.s7_port if isinstance(plc, S7Device) else opts.enip_port
                await plc.start(opts.host, port or 0)
                self._stack.push_async_callback(plc.stop)
            if opts.control_port is not None:
                self.control = await self._stack.enter_async_context(
                    ControlServer(self.handle, opts.host, opts.control_port)
                )
            tg = await self._stack.enter_async_context(asyncio.TaskGroup())
            self._tg = tg
            self._tick_task = tg.create_task(self._tick_loop(), name="sim-tick")
        except BaseException:
            await self._stack.aclose()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for task in [self._tick_task, *self._tasks]:
            if task is not None:
                task.cancel()
        await self._stack.aclose()

    # -- time and ticks ---------------------------------------------------------------------

    def sim_time(self) -> float:
        """Simulated seconds since start."""
        return (time.monotonic() - self._t0) * self.options.speed

    async def next_tick(self) -> None:
        """Wait until the next tick has updated every served value."""
        self._tick_event.clear()
        await self._tick_event.wait()

    async def _tick_loop(self) -> None:
        period = self.options.tick_s
        due = time.monotonic()
        while True:
            due += period
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            elif -delay > period:
                # Behind by more than a tick: count it and skip ahead instead of bursting.
                self.stats.late_ticks += 1
                due = time.monotonic()
            await self._tick()

    async def _tick(self) -> None:
        started = time.monotonic()
        cpu_started = time.thread_time()
        sample = self.plant.sample((started - self._t0) * self.options.speed)
        ts_ms = int(time.time() * 1000)
        rows: list[TruthRow] = []
        for name, device in self.devices.items():
            values = sample.values[name]
            last = self._last[name]
            changed = [tag for tag, v in values.items() if last.get(tag, _MISSING) != v]
            if changed:
                device.image.update(values, set(changed))
                last.update(values)
                rows.extend((name, tag, values[tag], False) for tag in changed)
        for name, plc in self.plcs.items():
            values = sample.values[name]
            last = self._last[name]
            changed = [tag for tag, v in values.items() if last.get(tag, _MISSING) != v]
            # Called on every tick, changes or not: a Logix controller also hears of faults here.
            plc.update(values, set(changed))
            if changed:
                last.update(values)
                rows.extend((name, tag, values[tag], False) for tag in changed)
        if self.opcua is not None:
            ts = dt.datetime.fromtimestamp(ts_ms / 1000, dt.UTC)
            rows.extend(await self.opcua.publish(ts, sample.values, sample.bad))
        if self.truth is not None:
            self.truth.record(ts_ms, rows)
        self.faults.expire(started)
        cost = time.monotonic() - started
        self.stats.ticks += 1
        self.stats.busy_s += cost
        self.stats.cpu_s += time.thread_time() - cpu_started
        self.stats.max_tick_s = max(self.stats.max_tick_s, cost)
        self._tick_event.set()

    def _written(self, machine: str, tag: str, value: Value) -> None:
        """A client wrote a writable tag: the model takes it, and the register image shows it
        at once (a read-back straight after the write sees the new value)."""
        self.plant.machine(machine).write(tag, value)
        last = self._last[machine]
        if machine in self.plcs:
            plc = self.plcs[machine]
            plc_spec = next(t for t in plc.tags if t.name == tag)
            last[tag] = plc_quantize(plc_spec, value)
            plc.update(last, {tag})
            return
        device = self.devices[machine]
        spec = next(t for t in device.image.tags if t.name == tag)
        last[tag] = quantize(spec, value)
        device.image.update(last, {tag})

    # -- what listens where -----------------------------------------------------------------

    def endpoints(self) -> list[dict[str, Any]]:
        """One entry per machine: protocol and where a client reaches it."""
        out: list[dict[str, Any]] = []
        for name, m in self.plant.machines.items():
            entry: dict[str, Any] = {"machine": name, "kind": m.kind, "protocol": m.protocol}
            if name in self.devices:
                dev = self.devices[name]
                entry.update(host=dev.host, port=dev.port, unit=UNIT_ID)
            elif name in self.plcs:
                plc = self.plcs[name]
                entry.update(host=plc.host, port=plc.port)
                if isinstance(plc, S7Device):
                    entry.update(rack=S7_RACK, slot=S7_SLOT)
                else:
                    entry.update(slot=ENIP_SLOT)
            elif self.opcua is not None:
                entry.update(url=self.opcua.url, browse_root=f"/Objects/2:{name}")
            out.append(entry)
        return out

    def node_ids(self, machine: str) -> dict[str, tuple[str, str]]:
        """Current node id and browse path of every tag of an OPC-UA machine."""
        gen = self.opcua.generation if self.opcua else 0
        return {
            t.name: (node_id(machine, t, gen), browse_path(machine, t))
            for t in self.plant.machines[machine].tags
            if isinstance(t, OpcuaTag)
        }

    def current(self, machine: str) -> dict[str, Value]:
        """The values served by the last tick (Modbus, S7 and Logix machines)."""
        return dict(self._last[machine])

    # -- control ----------------------------------------------------------------------------

    async def handle(self, req: dict[str, Any]) -> dict[str, Any]:
        """Execute one control request (see `edge_agent.simulators.control`)."""
        cmd = req.get("cmd")
        if cmd == "status":
            return {
                "sim_time": round(self.sim_time(), 3),
                "speed": self.options.speed,
                "machines": self.endpoints(),
                "stats": self.stats.to_json(),
                "anomalies": [a.to_json() for a in self.plant.anomalies],
                "faults": [f.to_json() for f in self.faults.faults],
                "opcua_restarts": self.opcua.restarts if self.opcua else 0,
            }
        if cmd == "inject":
            return {"anomaly": self.inject(req).to_json()}
        if cmd == "clear":
            return {"cleared": self.plant.clear_anomalies(req.get("machine"), req.get("tag"))}
        if cmd == "fault":
            return {"fault": self.fault(req)}
        if cmd == "clear_faults":
            return {"cleared": self.faults.clear(req.get("machine"))}
        raise ValueError(f"unknown cmd {cmd!r}; use status, inject, clear, fault, clear_faults")

    def inject(self, req: dict[str, Any]) -> Anomaly:
        """Start an anomaly now (or `delay` simulated seconds from now)."""
        anomaly = Anomaly(
            machine=str(req["machine"]),
            tag=str(req["tag"]),
            kind=req["kind"],
            start=self.sim_time() + float(req.get("delay") or 0.0),
            duration=None if req.get("duration") is None else float(req["duration"]),
            magnitude=None if req.get("magnitude") is None else float(req["magnitude"]),
        )
        self.plant.add_anomaly(anomaly)
        return anomaly

    def fault(self, req: dict[str, Any]) -> dict[str, Any]:
        """Put a communication fault in force on one machine."""
        machine, kind = str(req["machine"]), str(req["kind"])
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; use one of {FAULT_KINDS}")
        self.plant.machine(machine)  # a helpful error for an unknown machine
        duration = float(req.get("duration") or DEFAULT_FAULT_S[kind])
        now = time.monotonic()
        if machine in self.plcs:
            return self._plc_fault(machine, kind, duration, req)
        if machine not in self.devices:
            if kind not in ("restart", "drop") or self.opcua is None:
                raise ValueError(
                    f"{machine} is an OPC-UA machine: its faults are drop and restart "
                    "(both act on the one OPC-UA server, so on every CNC)"
                )
            if kind == "drop":
                return {"machine": machine, "kind": kind, "closed": self.opcua.drop_connections()}
            self._spawn(
                self.opcua.restart(duration, bool(req.get("renumber"))), "sim-opcua-restart"
            )
            return {"machine": machine, "kind": kind, "duration": duration, "url": self.opcua.url}
        device = self.devices[machine]
        tag = req.get("tag")
        if kind == "drop":
            return {"machine": machine, "kind": kind, "closed": device.drop_connections()}
        if kind in ("offline", "restart"):
            if not device.listening:
                raise ValueError(f"{machine} is already offline")
            self._spawn(device.go_offline(duration), f"sim-offline-{machine}")
            return {"machine": machine, "kind": kind, "duration": duration}
        code = 0
        if kind == "exception":
            if tag is not None:
                self.plant.tag(machine, str(tag))
            code = int(req.get("code") or (2 if tag else 6))
            ExcCodes(code)  # ValueError for codes Modbus does not define
        delay_s = float(req.get("delay_ms") or 2000) / 1000 if kind == "slow" else 0.0
        fault = Fault(machine, cast(FaultKind, kind), now, now + duration, delay_s, code, tag)
        self.faults.add(fault)
        return fault.to_json()

    def _plc_fault(
        self, machine: str, kind: str, duration: float, req: dict[str, Any]
    ) -> dict[str, Any]:
        plc = self.plcs[machine]
        protocol = self.plant.machine(machine).protocol
        if kind == "drop":
            closed = plc.drop_connections()
            return {"machine": machine, "kind": kind, "closed": closed}
        if kind in ("offline", "restart"):
            if not plc.listening:
                raise ValueError(f"{machine} is already offline")
            self._spawn(plc.go_offline(duration), f"sim-offline-{machine}")
            return {"machine": machine, "kind": kind, "duration": duration}
        tag = req.get("tag")
        code = 0
        if kind == "exception":
            if tag is not None:
                self.plant.tag(machine, str(tag))
            with_tag, without = _EXCEPTION_CODES[protocol]
            code = int(req.get("code") or (with_tag if tag else without))
            if not 0 < code < 0xFF:
                raise ValueError(f"code {code}: an S7 return code or CIP status is 1 to 254")
        delay_s = float(req.get("delay_ms") or 2000) / 1000 if kind == "slow" else 0.0
        now = time.monotonic()
        fault = Fault(machine, cast(FaultKind, kind), now, now + duration, delay_s, code, tag)
        self.faults.add(fault)
        return fault.to_json()

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        task: asyncio.Task[None] = self._tg.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task
