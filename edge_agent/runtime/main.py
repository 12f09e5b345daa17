"""Build an agent from its config and run it until SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import closing
from functools import partial
from pathlib import Path

import wire
from edge_agent.buffer import Batcher, Bounds, Buffer, BufferDB
from edge_agent.commands import CommandExecutor, CommandJournal, Reconfigurer
from edge_agent.config import AgentConfig, buffer_path, state_dir
from edge_agent.config.tag_event import TagEvent
from edge_agent.publish import Publisher, PublisherSettings
from edge_agent.publish.sparkplug import SparkplugEdge
from edge_agent.publish.tracing import BatchTracer
from edge_agent.runtime.agent import Agent
from edge_agent.runtime.contract import WireContract
from edge_agent.runtime.events import EventWatch, ReportsEvents
from edge_agent.runtime.lock import hold_agent_lock
from edge_agent.runtime.meta import meta_messages
from edge_agent.runtime.sources import Source
from millstream_common.logjson import hide_secret
from millstream_common.tracing import open_tracer

__all__ = ["buffer_path", "run_agent", "state_dir"]

log = logging.getLogger(__name__)


async def run_agent(
    config: AgentConfig,
    config_file: Path,
    sources: dict[str, Source],
    *,
    on_status: Callable[[wire.AgentReport], None] | None = None,
    on_ready: Callable[[Agent], None] | None = None,
    meta: Mapping[str, Mapping[str, wire.TagMeta]] | None = None,
    reconfigure: Reconfigurer | None = None,
    events: Mapping[str, Mapping[str, TagEvent]] | None = None,
) -> bool:
    """Run until SIGTERM or SIGINT, then shut down cleanly (flush, commit, status offline).
    True when it stopped to reload: a configuration from the hub became active (or was
    rolled back), and the caller starts it again with `select_config`.

    `meta` (machine → tag → unit, see `profile_meta`) is published retained for every device
    on each connect, so the hub shows units; None publishes no meta at all. `events` (machine →
    tag → `event:`, see `tag_events`) are the alarm bits and codes whose changes are published
    as machine events. Without
    `reconfigure` (an agent embedded in the demo) config commands are refused.
    """
    # One agent per buffer (edge_agent/runtime/lock.py): held before the buffer is opened.
    state = state_dir(config, config_file)
    state.mkdir(parents=True, exist_ok=True)
    buffer_file = buffer_path(config, config_file)
    # The command journal beside the status file; held under the same lock as the buffer.
    tracer = open_tracer("millstream-agent", config.tracing)
    try:
        with (
            hold_agent_lock(buffer_file),
            closing(CommandJournal(state / "commands.db")) as journal,
        ):
            return await _run(
                config,
                config_file,
                sources=sources,
                buffer_file=buffer_file,
                journal=journal,
                on_status=on_status,
                on_ready=on_ready,
                meta=meta,
                reconfigure=reconfigure,
                events=events or {},
                tracing=None
                if tracer is None
                else BatchTracer(
                    tracer, config.agent.id, in_payload=config.mqtt.protocol == "mqttv311"
                ),
            )
    finally:
        if tracer is not None:  # what it holds is exported before the process ends
            await asyncio.to_thread(tracer.close)


async def _run(
    config: AgentConfig,
    config_file: Path,
    *,
    sources: dict[str, Source],
    buffer_file: Path,
    journal: CommandJournal,
    on_status: Callable[[wire.AgentReport], None] | None,
    on_ready: Callable[[Agent], None] | None,
    meta: Mapping[str, Mapping[str, wire.TagMeta]] | None,
    reconfigure: Reconfigurer | None,
    events: Mapping[str, Mapping[str, TagEvent]],
    tracing: BatchTracer | None,
) -> bool:
    mqtt, buf = config.mqtt, config.buffer
    contract = WireContract(config.agent.id, config.agent.site, config.agent.line)
    settings = PublisherSettings.from_config(mqtt, config.agent.id, config_file=str(config_file))
    hide_secret(settings.password)  # whatever quotes it (a library's error), not in the log
    bounds = Bounds(
        max_bytes=buf.max_bytes, max_age=buf.max_age.total_seconds(), on_full=buf.on_full
    )
    state = state_dir(config, config_file)
    commands = CommandExecutor(config.agent.id, journal, sources, reconfigure=reconfigure)
    async with Buffer(
        buffer_file,
        bounds=bounds,
        commit_interval=buf.commit_interval.total_seconds(),
        encoder=contract.encode_batch,
        reserve_bytes=buf.disk_reserve,
        tracing=tracing,
    ) as buffer:
        publisher = Publisher(
            settings,
            buffer,
            contract,
            commands=commands,
            sparkplug=_sparkplug_edge(config, sources, meta),
            tracing=tracing,
        )
        if meta is not None:
            # Stamped once per start: a reconnect republishes the same message, which the hub
            # takes as unchanged; a restart with a changed profile supersedes it.
            publisher.set_retained(
                meta_messages(
                    config.agent.site,
                    config.agent.line,
                    sources,
                    meta,
                    int(time.time() * 1000),
                )
            )
        sparkplug = mqtt.output == "sparkplug"
        watches = await _event_watches(buffer, events, sparkplug=sparkplug)
        await _event_reporters(buffer, sources, sparkplug=sparkplug)
        agent = Agent(
            agent_id=config.agent.id,
            site=config.agent.site,
            line=config.agent.line,
            sources=sources,
            buffer=buffer,
            publisher=publisher,
            batcher=Batcher(mqtt.max_batch, mqtt.max_delay_ms / 1000),
            status_interval=mqtt.status_interval.total_seconds(),
            status_file=state / "agent-status.json",
            on_status=on_status,
            commands=commands,
            events=watches,
        )
        if reconfigure is not None:
            reconfigure.agent = agent
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, agent.stop)
        try:
            if on_ready is not None:
                on_ready(agent)
            with _collector_for_readings():
                await agent.run()
            return agent.reload_requested
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)


# Young collections every this many allocations instead of CPython's 700 (the hub's too).
GC_YOUNG_THRESHOLD = 10_000


@contextlib.contextmanager
def _collector_for_readings() -> Iterator[None]:
    """While the agent runs: what start-up built is frozen out of the cyclic collector, and
    young collections are rarer.

    A poll makes a tuple per reading (a sample, then a reading) and the batcher and the writer
    hold a few hundred thousand of them: at 700 allocations per young collection, and full
    collections walking every module, model and config object start-up made, the collector was
    the agent's largest cost at its ceiling (py-spy: ~40 % of the GIL's time on the two lines
    that make those tuples; 2.6 times as many made per CPU-second with this, in-process). The
    tuples hold no references back, so rarer collections free nothing later that matters."""
    # Several agents may run in one process (tests, the demo): the first tunes, the last
    # puts back.
    _collector_users.append(gc.get_threshold())
    if len(_collector_users) == 1:
        # No gc.collect() first: in a big process (the test suite's) that one full collection
        # held the loop 0.6 s; what start-up left as garbage is little and stays frozen.
        gc.freeze()
        gc.set_threshold(GC_YOUNG_THRESHOLD, *_collector_users[0][1:])
    try:
        yield
    finally:
        before = _collector_users.pop()
        if not _collector_users:
            gc.set_threshold(*before)
            gc.unfreeze()


_collector_users: list[tuple[int, int, int]] = []


def _sparkplug_edge(
    config: AgentConfig,
    sources: Mapping[str, Source],
    meta: Mapping[str, Mapping[str, wire.TagMeta]] | None,
) -> SparkplugEdge | None:
    """The Sparkplug B edge node this agent is with `mqtt.output: sparkplug` (else None)."""
    if config.mqtt.output != "sparkplug":
        return None
    spb = config.mqtt.sparkplug
    return SparkplugEdge(
        config.agent.id,
        spb.group_id or config.agent.site,
        spb.edge_node_id or config.agent.line,
        host_id=spb.host_id,
        tags={machine: list((meta or {}).get(machine, {})) for machine in sources},
    )


async def _event_watches(
    buffer: Buffer, events: Mapping[str, Mapping[str, TagEvent]], *, sparkplug: bool
) -> dict[str, EventWatch]:
    """One watch per machine with `event:` tags, starting from the values last committed."""
    if sparkplug and events:
        # A Sparkplug edge node has no machine-events topic of its own (docs/events.md).
        log.warning("mqtt.output is sparkplug: the profiles' event: tags publish no events")
        return {}
    watches = {}
    for machine, specs in events.items():
        last = await buffer.call(partial(BufferDB.event_state, machine=machine))
        watches[machine] = EventWatch(specs, last)
    return watches


async def _event_reporters(
    buffer: Buffer, sources: Mapping[str, Source], *, sparkplug: bool
) -> None:
    """Drivers that report events themselves (OPC-UA) hand them to the buffer's events lane,
    starting from the condition memory last committed with them."""
    for machine, source in sources.items():
        if not isinstance(source, ReportsEvents) or not source.wants_events:
            continue
        if sparkplug:
            log.warning("mqtt.output is sparkplug: %s's OPC-UA events are not published", machine)
            continue
        state = await buffer.call(partial(BufferDB.event_state, machine=machine))
        source.report_events_to(partial(buffer.append_events, machine), state)
