"""The running agent: sources → batcher → buffer → publisher, status, graceful shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import wire
from edge_agent import __version__
from edge_agent.buffer import Batcher, Buffer
from edge_agent.cancel import cancel_and_wait
from edge_agent.commands import CommandExecutor
from edge_agent.drivers.health import DeviceHealth
from edge_agent.errors import MillstreamAgentError
from edge_agent.publish import Publisher
from edge_agent.runtime.events import EventWatch
from edge_agent.runtime.ingest import to_readings
from edge_agent.runtime.production import Production
from edge_agent.runtime.sources import Source
from edge_agent.runtime.status import build_status
from millstream_common.backoff import device_backoff

__all__ = ["Agent"]

log = logging.getLogger(__name__)

# How long a stopping agent waits for its devices to finish the reads in flight (a Modbus
# device's default timeout is 1 s); the whole stop stays near 5 s.
DRAIN_S = 2.5
# What the devices read before they stopped is then handed over to the buffer however busy the
# machine is: it is in memory, a few polls per device (edge_agent/drivers/polling.py,
# QUEUE_BATCHES), and the devices served it. This bound only guards against a bug.
HANDOVER_S = 20.0


class Agent:
    """Wires everything in one TaskGroup; `stop()` ends it cleanly within a few seconds."""

    def __init__(
        self,
        *,
        agent_id: str,
        sources: dict[str, Source],
        site: str | None = None,
        line: str | None = None,
        buffer: Buffer,
        publisher: Publisher,
        batcher: Batcher,
        status_interval: float = 10.0,
        status_file: Path | None = None,
        on_status: Callable[[wire.AgentReport], None] | None = None,
        clock: Callable[[], float] = time.time,
        commands: CommandExecutor | None = None,
        events: dict[str, EventWatch] | None = None,
    ) -> None:
        self.agent_id = agent_id
        # Machines whose profiles have `event:` tags (edge_agent/runtime/events.py).
        self.events = events or {}
        self.commands = commands
        self.site = site
        self.line = line
        self.sources = sources
        self.buffer = buffer
        self.publisher = publisher
        self.batcher = batcher
        self.status_interval = status_interval
        self.status_file = status_file
        self.on_status = on_status
        # One health per device, owned here and fed by its driver: every view reads this one.
        self.health = {
            name: DeviceHealth(name, src.offline_after_s, clock) for name, src in sources.items()
        }
        for name, src in sources.items():
            src.report_to(self.health[name])
        self.production = {name: Production() for name in sources}
        self.status: wire.AgentReport | None = None
        self._machine_states: dict[str, str] = {}  # as last published on each machine's topic
        self._clock = clock
        self._stop = asyncio.Event()
        self.reload_requested = False

    def stop(self) -> None:
        """Begin graceful shutdown (safe from a signal handler)."""
        self._stop.set()

    def reload(self) -> None:
        """Stop gracefully so the caller starts again with the configuration now active."""
        self.reload_requested = True
        self._stop.set()

    # -- what a config trial watches (edge_agent/commands/reconfigure.py) -----------------------

    def online_devices(self) -> set[str]:
        """Devices answering now."""
        now = self._clock()
        return {name for name, health in self.health.items() if health.state(now) == "online"}

    def broker_connected(self) -> bool:
        """Connected to the broker now."""
        return self.publisher.stats.connected

    def device_problem(self, device: str) -> str:
        """Why a device is not answering, in words (empty if it never failed)."""
        health = self.health.get(device)
        if health is None:
            return "no longer configured"
        return health.why() or health.last_error or "no answer yet"

    async def run(self) -> None:
        """Run until `stop()`: flush, commit, publish `offline`, disconnect."""
        async with asyncio.TaskGroup() as tg:
            acquire = {
                name: tg.create_task(self._acquire(name, src), name=f"acquire-{name}")
                for name, src in self.sources.items()
            }
            flush = tg.create_task(self._flush_loop(), name="batch-flush")
            publish = tg.create_task(self.publisher.run(), name="publish")
            status = tg.create_task(self._status_loop(), name="status")
            execute = (
                [tg.create_task(self.commands.run(), name="commands")]
                if self.commands is not None
                else []
            )
            await self._stop.wait()
            log.info("stopping: flushing buffered readings")
            # A write in progress ends as the journal says (edge_agent/commands/journal.py).
            await cancel_and_wait(execute)
            await self._drain_sources(acquire)
            await cancel_and_wait([flush])
            for device, readings in self.batcher.drain():
                self.buffer.append(device, readings)
            await self.buffer.flush()
            log.info("buffer committed; disconnecting")
            await self._publish_status()
            self.publisher.stop()
            # Waited for, not awaited: however the publisher ends, the shutdown goes on.
            _done, late = await asyncio.wait({publish}, timeout=3.5)
            if late:
                log.warning("publisher did not stop in time; the broker will send our last will")
            await cancel_and_wait([status, publish])
        log.info("stopped")

    async def _drain_sources(self, acquire: dict[str, asyncio.Task[None]]) -> None:
        """Stop reading, and take into the batcher everything the drivers had already read:
        samples waiting in a driver's queue are readings the device served (a cancelled
        acquire task would drop them)."""
        closing = {
            name: asyncio.create_task(src.close(), name=f"close-{name}")
            for name, src in self.sources.items()
        }
        if closing:
            await asyncio.wait(closing.values(), timeout=DRAIN_S)
        hung = sorted(name for name, task in closing.items() if not task.done())
        if hung:
            log.warning(
                "devices %s did not finish their reads within %g s; what they still hold is "
                "not buffered",
                ", ".join(hung),
                DRAIN_S,
            )
        # The others read nothing more: what they hold is in memory (a few polls each), and
        # all of it is taken, however long a loaded machine needs.
        handing = [task for name, task in acquire.items() if name not in hung]
        if handing:
            _done, late = await asyncio.wait(handing, timeout=HANDOVER_S)
            if late:
                log.error(
                    "devices %s did not hand over what they read within %g s; it is lost",
                    ", ".join(sorted(t.get_name().removeprefix("acquire-") for t in late)),
                    HANDOVER_S,
                )
        await cancel_and_wait([*closing.values(), *acquire.values()])

    async def _acquire(self, name: str, source: Source) -> None:
        health, production = self.health[name], self.production[name]
        backoff = device_backoff()
        while not self._stop.is_set():  # stopping: never reconnect, the sources are closing
            try:
                async with source:
                    async for samples in source.batches():
                        readings, skipped = to_readings(samples)
                        if (watch := self.events.get(name)) is not None:
                            seen = watch.see(readings)
                            self.buffer.append_events(name, seen.events, seen.changed)
                        now = self._clock()
                        production.record(readings, skipped, now)
                        for group in self.batcher.add(name, readings, now):
                            self.buffer.append(name, group)
                        await self.buffer.wait_room()
                        backoff.reset()
            except MillstreamAgentError as exc:
                if self._stop.is_set():
                    return
                # Drivers retry internally and report each failure to `health` themselves;
                # reaching here means the source gave up this round (e.g. could not connect).
                delay = backoff.next_delay()
                log.debug("device %s: %s; retrying in %.1f s", name, exc, delay)
                await self._pause(delay)
            except Exception as exc:
                # A bug in one driver must not stop the other devices or the publisher.
                health.poll_failed(f"internal error: {exc!r}")
                delay = backoff.next_delay()
                log.exception("device %s: unexpected error; restarting it in %.1f s", name, delay)
                await self._pause(delay)

    async def _pause(self, seconds: float) -> None:
        """Sleep, but not past a stop."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), seconds)

    async def _flush_loop(self) -> None:
        while True:
            deadline = self.batcher.next_deadline()
            wait = self.batcher.max_delay if deadline is None else deadline - self._clock()
            await asyncio.sleep(max(0.005, wait))
            for device, readings in self.batcher.due(self._clock()):
                self.buffer.append(device, readings)

    async def _status_loop(self) -> None:
        last_state: tuple[object, ...] = ()
        next_full = 0.0
        while True:
            now = self._clock()
            self.status = report = await self._snapshot(now)
            state = (
                report.state,
                report.connected,
                tuple(d.state for d in report.devices.values()),
            )
            # A device going offline or coming back is published at once, not at the next
            # periodic status: the fleet view must say so within seconds.
            if state != last_state or now >= next_full:
                await self._publish_status()
                last_state = state
                next_full = now + self.status_interval
            await asyncio.sleep(1.0)

    async def _snapshot(self, now: float) -> wire.AgentReport:
        buf = await self.buffer.stats()
        backlog, oldest_unsent = await self.buffer.call(
            lambda db: (db.unclaimed(), db.oldest_unsent_ts())
        )
        s = self.publisher.settings
        return build_status(
            agent_id=self.agent_id,
            version=__version__,
            now=now,
            devices=self.health,
            production=self.production,
            buf=buf,
            backlog=backlog,
            oldest_unsent_ts=oldest_unsent,
            pub=self.publisher.stats,
            receipt_timeout=s.receipt_timeout,
            receipts=s.receipts,
            broker=f"{s.host}:{s.port}",
        )

    async def _publish_status(self) -> None:
        now = self._clock()
        report = self.status = await self._snapshot(now)
        self.publisher.set_status(report.encode_wire(self.site, self.line))
        self._publish_machine_status(report)
        if self.on_status is not None:
            self.on_status(report)
        if self.status_file is not None:
            await asyncio.to_thread(_write_atomic, self.status_file, report.to_json())

    def _publish_machine_status(self, report: wire.AgentReport) -> None:
        # Each machine's own retained status says what its device health says, with the reason;
        # the publisher sends only those that changed. A device still connecting has no state
        # to tell yet.
        if self.site is None or self.line is None:
            return
        messages: dict[str, bytes] = {}
        for name, d in report.devices.items():
            if d.state == "connecting" or self._machine_states.get(name) == d.state:
                continue
            self._machine_states[name] = d.state
            topic = wire.status_topic(self.site, self.line, name)
            messages[topic] = wire.encode_status(d.state, report.ts, d.why)
        self.publisher.set_retained(messages)


def _write_atomic(path: Path, doc: dict[str, object]) -> None:
    # A temporary file of this write's own: at shutdown the final status and the periodic one
    # may be written at the same moment from two threads, and one shared ".tmp" name let one
    # rename the other's file away (FileNotFoundError, the agent exiting 1 on SIGTERM).
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o644)  # as the status file always was: `edge-agent status` reads it
        with os.fdopen(fd, "w") as f:
            f.write(json.dumps(doc, indent=1))
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
