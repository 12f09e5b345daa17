"""A clean stop far beyond the agent's ceiling loses no reading a device served (issue #28).

The real `edge-agent run` polls 50 libmodbus servers (tests/harness/counting_modbus_server.c)
of 1,000 uint16 registers every 20 ms: 2,500,000 readings/s offered, over ten times what the
agent can take (docs/agent.md: ~90,000/s delivered at 10 devices on a 2-core machine; here it
polls 94,000-142,000/s, as the test prints). Each server answers every read with its next
response number in each register of the span, and records the response once libmodbus has
written all of it to the socket.

*Served* means exactly that: a response the device wrote in full. No exception is allowed,
not even a response cut off by the stop: on SIGTERM the drivers send no further request and
let the one in flight be answered (docs/agent.md "Shutdown"), so every response sent in full
reaches the agent (an answer the agent dropped because its timeout had passed on a loaded
machine would be a loss too, and fail the test), and every reading in it must be *delivered*
(received by the stand-in hub below, which answers receipts like the hub) or *buffered* (in
buffer.db after the stop, for the next start to send). Nothing else counts: no reading
dropped (the buffer bound is far away), no reading of a response never served. A reading is
identified by (device, register, response number): the value is the number, which the test
checks never wraps past 65,535.

Figures (rates, what the stop cost) are printed, never asserted (STYLE 10).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import aiomqtt
import pytest
from mqtt_harness import Broker

import wire
from tests.harness import libmodbus

EDGE_AGENT = str(Path(sys.executable).with_name("edge-agent"))
DEVICES, REGISTERS, POLL_MS = 50, 1000, 20
OFFERED_PER_S = DEVICES * REGISTERS * 1000 // POLL_MS
CEILING_PER_S = 90_000  # docs/agent.md "Modbus end to end", 10 devices
OVERLOAD_S = 15
SITE, LINE = "plant", "l1"
# One reading as the agent writes it (every value here a good uint16); its register and value.
READING = re.compile(rb'\{"tag":"r(\d+)","ts":\d+,"v":(\d+),"q":"good"\}')
HEAD = re.compile(rb'\{"v":1,"src":"(?P<src>[^"]+)","seq":(?P<seq>\d+),')

# Per device: response number → bit mask of registers (those it covered, or those found with
# that number delivered or buffered).
Masks = dict[str, dict[int, int]]


@dataclass
class Hub:
    """Stands in for the hub: keeps every telemetry payload as it came (parsed after the run,
    so the machine's cores go to the agent) and answers with coalesced receipts every 50 ms,
    as the hub does."""

    broker: Broker
    payloads: list[tuple[float, str, bytes]] = field(default_factory=list)  # t, machine, body
    _pending: dict[str, list[tuple[int, str]]] = field(default_factory=dict)
    _ready: asyncio.Event = field(default_factory=asyncio.Event)

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[Hub]:
        async with asyncio.TaskGroup() as tg:
            task = tg.create_task(self._run(), name="stand-in hub")
            await asyncio.wait_for(self._ready.wait(), 10)
            try:
                yield self
            finally:
                task.cancel()

    async def _run(self) -> None:
        async with aiomqtt.Client("127.0.0.1", self.broker.port, identifier="hub") as client:
            await client.subscribe(f"ms/v1/{SITE}/{LINE}/+/telemetry", qos=1)
            self._ready.set()
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self._answer(client), name="receipts")
                async for msg in client.messages:
                    payload = msg.payload
                    assert isinstance(payload, bytes)
                    self.payloads.append((time.time(), str(msg.topic).split("/")[4], payload))
                    head = HEAD.match(payload)
                    assert head is not None, payload[:200]
                    batch = (int(head["seq"]), wire.batch_digest(payload))
                    self._pending.setdefault(head["src"].decode(), []).append(batch)

    async def _answer(self, client: aiomqtt.Client) -> None:
        while True:
            await asyncio.sleep(0.05)
            for src, batches in list(self._pending.items()):
                if batches:
                    self._pending[src] = []
                    seqs = wire.coalesce_seqs(seq for seq, _ in batches)
                    await client.publish(
                        wire.receipt_topic(src), wire.encode_receipt(seqs, batches), qos=1
                    )


def write_config(work: Path, broker: Broker, ports: list[int]) -> Path:
    """One uint16 tag per register (no deadband: every poll of every tag is a reading)."""
    profiles = work / "device_profiles"
    profiles.mkdir(parents=True)
    tags = "".join(
        f"  - {{name: r{a}, table: holding, address: {a}, type: uint16}}\n"
        for a in range(REGISTERS)
    )
    (profiles / "counter-u16.yaml").write_text(
        "profile: counter-u16\nvendor: Millstream\nmodel: counting libmodbus server\n"
        "protocol: modbus\nsource: tests/harness/counting_modbus_server.c\n"
        f"defaults: {{order: ABCD, poll_ms: {POLL_MS}}}\ntags:\n{tags}"
    )
    devices = "".join(
        f"  - machine: m{i}\n    profile: counter-u16\n"
        f"    modbus: {{host: 127.0.0.1, port: {port}, unit: 1, timeout_ms: 1000}}\n"
        for i, port in enumerate(ports)
    )
    config = work / "agent.yaml"
    config.write_text(
        f"agent: {{id: overload, site: {SITE}, line: {LINE}}}\n"
        f"mqtt: {{url: '{broker.url}', status_interval: 1s}}\n"
        # Far above what the run buffers: no reading may leave by the bound.
        "buffer: {path: ./buffer.db, max_bytes: 1GiB, max_age: 7d}\n"
        f"devices:\n{devices}"
    )
    return config


def status(work: Path) -> dict[str, Any]:
    try:
        doc: dict[str, Any] = json.loads((work / "state" / "agent-status.json").read_text())
    except (OSError, ValueError):
        return {}
    return doc


def served(files: list[Path], since: float = 0.0, until: float = float("inf")) -> Masks:
    """What each counting server recorded as served (written within [since, until))."""
    out: Masks = {}
    for i, file in enumerate(files):
        spans = out[f"m{i}"] = {}
        for line in file.read_text().splitlines():
            number, address, count, ms = map(int, line.split())
            if since <= ms / 1000 < until:
                spans[number] = ((1 << count) - 1) << address
    return out


def found(into: Masks, machine: str, fragment: bytes) -> None:
    """Add the readings of a payload or a chunk body."""
    masks = into.setdefault(machine, {})
    readings = READING.findall(fragment)
    # A reading the pattern missed would go uncounted.
    assert len(readings) == fragment.count(b'"tag":'), fragment[:300]
    for register, value in readings:
        number = int(value)
        masks[number] = masks.get(number, 0) | 1 << int(register)


def buffered(db: Path) -> tuple[Masks, int]:
    """The readings left in the stopped agent's buffer, and how many the bounds dropped."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        out: Masks = {}
        for device, body in conn.execute("SELECT device, body FROM chunk"):
            found(out, device, body)
        dropped = conn.execute("SELECT coalesce(sum(dropped + downsampled), 0) FROM drops")
        return out, int(dropped.fetchone()[0])
    finally:
        conn.close()


def count(masks: Masks) -> int:
    return sum(m.bit_count() for spans in masks.values() for m in spans.values())


def union(a: Masks, b: Masks) -> Masks:
    out: Masks = {}
    for masks in (a, b):
        for machine, spans in masks.items():
            mine = out.setdefault(machine, {})
            for number, mask in spans.items():
                mine[number] = mine.get(number, 0) | mask
    return out


def minus(a: Masks, b: Masks) -> Masks:
    """The readings of `a` not in `b`."""
    out: Masks = {}
    for machine, spans in a.items():
        theirs = b.get(machine, {})
        left = {n: m & ~theirs.get(n, 0) for n, m in spans.items()}
        out[machine] = {n: m for n, m in left.items() if m}
    return out


def tail(log: IO[bytes]) -> str:
    log.seek(0)
    lines = log.read().decode(errors="replace").splitlines()
    return "\n".join(line for line in lines if "pending publish calls" not in line)[-6000:]


async def test_sigterm_far_beyond_the_ceiling_keeps_every_served_reading(
    tmp_path: Path, broker: Broker
) -> None:
    try:
        binary = libmodbus.build(libmodbus.COUNTING_SERVER_C, tmp_path)
    except libmodbus.LibmodbusMissingError as exc:
        pytest.skip(str(exc))
    files = [tmp_path / f"served-{i}.txt" for i in range(DEVICES)]
    servers: list[subprocess.Popen[str]] = []
    ports: list[int] = []
    work = tmp_path / "agent"
    work.mkdir()
    schedules: list[float] = []
    with (work / "agent.log").open("w+b") as log:
        try:
            for file in files:
                server, port = libmodbus.spawn(binary, str(REGISTERS), str(file))
                servers.append(server)
                ports.append(port)
            config = write_config(work, broker, ports)
            async with Hub(broker).running() as hub:
                agent = await asyncio.create_subprocess_exec(
                    EDGE_AGENT, "run", str(config), stdout=log, stderr=log, cwd=work
                )
                try:
                    async with asyncio.timeout(60):
                        while not (
                            (s := status(work)).get("connected")
                            and len(s.get("devices", {})) == DEVICES
                            and all(d.get("online") for d in s["devices"].values())
                        ):
                            assert agent.returncode is None, tail(log)
                            await asyncio.sleep(0.2)
                    online = time.time()
                    for _ in range(OVERLOAD_S):
                        await asyncio.sleep(1)
                        devices = status(work).get("devices", {}).values()
                        schedules += [d["schedule"] for d in devices if d.get("schedule")]
                    sigterm = time.time()
                    agent.send_signal(signal.SIGTERM)
                    async with asyncio.timeout(30):
                        code = await agent.wait()
                    stopped = time.time()
                finally:
                    if agent.returncode is None:
                        os.kill(agent.pid, signal.SIGKILL)
                        await agent.wait()
                assert code == 0, tail(log)
        finally:
            # After the agent: every response a server will ever serve is in its file now.
            codes = libmodbus.stop_all(servers)
        agent_log = tail(log)
    assert codes == [0] * DEVICES, codes
    # The last status, written as the agent stopped, holds each device's last judged share.
    schedules += [d["schedule"] for d in status(work)["devices"].values() if d.get("schedule")]

    truth = served(files)
    delivered: Masks = {}
    for _, machine, payload in hub.payloads:
        found(delivered, machine, payload)
    kept, dropped = buffered(work / "buffer.db")
    lost = minus(truth, union(delivered, kept))
    never_served = minus(union(delivered, kept), truth)
    n_served, n_lost = count(truth), count(lost)
    highest = max(max(spans, default=0) for spans in truth.values())

    window = sigterm - online
    in_window = max(1, count(served(files, online, sigterm)))
    at_stop = count(served(files, sigterm))
    delivered_in_window = sum(
        len(READING.findall(p)) for t, _, p in hub.payloads if online <= t < sigterm
    )
    print(
        f"\noffered {OFFERED_PER_S:,} readings/s, {OFFERED_PER_S / CEILING_PER_S:.0f} × the "
        f"documented ceiling ({CEILING_PER_S:,}/s); over {window:.1f} s of overload the servers "
        f"served {in_window / window:,.0f} readings/s ({OFFERED_PER_S * window / in_window:.1f}"
        f" × less than offered) and the hub received {delivered_in_window / window:,.0f}/s; "
        f"lowest schedule share the agent reported {min(schedules, default=None)}\n"
        f"stop: {stopped - sigterm:.2f} s, {at_stop:,} readings served after SIGTERM\n"
        f"served {n_served:,} readings in all: delivered {count(delivered):,}, buffered "
        f"{count(kept):,} (of them delivered too "
        f"{count(delivered) + count(kept) - count(union(delivered, kept)):,}), lost {n_lost:,};"
        f" highest response number {highest:,}"
    )
    assert highest < 1 << 16, "response numbers wrapped: values no longer name responses"
    assert all(truth.values()), "a device served nothing"
    # An overload, as the agent itself reports it: polling well below schedule.
    assert schedules, "the agent reported no schedule share"
    assert min(schedules) < 0.5, schedules
    assert dropped == 0
    assert not any(never_served.values()), "readings of responses never served"
    assert n_lost == 0, (
        f"{n_lost:,} served readings neither delivered nor buffered, per device: "
        f"{ {m: count({m: s}) for m, s in lost.items() if s} }\n{agent_log}"
    )
