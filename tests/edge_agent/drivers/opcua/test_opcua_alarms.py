"""OPC-UA Alarms & Conditions through the driver, against a real asyncua server with an
OffNormalAlarm (edge_agent/simulators/opcua_alarms.py): raise → an `active` event; Acknowledge
through the driver → the server's condition is acknowledged and `acked` comes back; clear →
`cleared`; a reconnect's ConditionRefresh reports what happened while the driver was away,
with the ids already sent, and a condition that ended meanwhile is reported cleared."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
import pytest_asyncio
from asyncua import Client, Server, ua
from opcua_harness import free_port, until

import wire
from edge_agent.cli.browse import _walk, profile_skeleton
from edge_agent.cli.opcua import _conditions_table, _probe_once
from edge_agent.drivers.opcua import OpcuaDriver, OpcuaEndpoint, SessionOptions
from edge_agent.drivers.opcua.points import OpcuaEvents
from edge_agent.errors import WriteRefused
from edge_agent.simulators.opcua_alarms import (
    ALARMS_NAMESPACE,
    OffNormalCondition,
    press_server,
)

pytestmark = [pytest.mark.asyncio(loop_scope="function"), pytest.mark.timeout(60)]


@dataclass
class AlarmServer:
    server: Server
    alarm: OffNormalCondition
    url: str


@pytest_asyncio.fixture(loop_scope="function")
async def press() -> AsyncIterator[AlarmServer]:
    url = f"opc.tcp://127.0.0.1:{free_port()}/alarms/"
    server, alarm = await press_server(url)
    async with server:
        await alarm.start()
        yield AlarmServer(server, alarm, url)
        await alarm.stop()


@dataclass
class Committed:
    """What the runtime's buffer would hold: the events, and the condition memory."""

    events: list[wire.MachineEvent] = field(default_factory=list)
    state: dict[str, wire.Value] = field(default_factory=dict)

    def sink(self, events: list[wire.MachineEvent], changed: dict[str, wire.Value]) -> None:
        self.events.extend(events)
        self.state.update(changed)

    def states(self) -> list[str | None]:
        return [e.state for e in self.events]


def driver_for(press: AlarmServer, options: SessionOptions, committed: Committed) -> OpcuaDriver:
    driver = OpcuaDriver("press-01", OpcuaEndpoint(press.url), [], options, events=OpcuaEvents())
    driver.report_events_to(committed.sink, dict(committed.state))
    return driver


async def test_raise_acknowledge_clear(press: AlarmServer, options: SessionOptions) -> None:
    committed = Committed()
    async with driver_for(press, options, committed) as driver:
        await asyncio.sleep(0.5)  # the refresh of a server without active conditions: nothing
        assert committed.events == []
        await press.alarm.set(True)
        await until(lambda: committed.states() == ["active"], 5)
        raised = committed.events[0]
        assert (raised.source, raised.type, raised.severity) == ("Press", "OffNormalAlarmType", 700)
        assert raised.message == "Guard door open"
        assert raised.fields["active"] is True
        assert raised.fields["acked"] is False

        with pytest.raises(WriteRefused, match="no condition with event id"):
            await driver.acknowledge("not-this-one:1", "")
        await driver.acknowledge(raised.id, "checked by shift lead")
        await until(lambda: committed.states() == ["active", "acked"], 5)
        assert press.alarm.acknowledged == ["checked by shift lead"]

        await press.alarm.set(False)
        await until(lambda: committed.states() == ["active", "acked", "cleared"], 5)
    # One occurrence: every transition carries the id it was raised with.
    assert {e.id for e in committed.events} == {raised.id}
    cleared = committed.events[-1]
    assert cleared.fields["retain"] is False
    assert committed.state == {f"opcua:{raised.fields['condition']}": ""}


async def test_refresh_after_reconnect(press: AlarmServer, options: SessionOptions) -> None:
    committed = Committed()
    async with driver_for(press, options, committed):
        await press.alarm.set(True)
        await until(lambda: committed.states() == ["active"], 5)
    first = committed.events[0]

    # Away and back with nothing changed: the refresh re-sends the same id and ts (the hub
    # stores it once) and raises nothing new.
    async with driver_for(press, options, committed):
        await until(lambda: len(committed.events) == 2, 5)
    assert (committed.events[1].id, committed.events[1].ts) == (first.id, first.ts)

    # Away while the alarm is cleared and acknowledged at the panel: the server retains it no
    # more, so the refresh does not mention it: reported cleared once the refresh ends.
    await press.alarm.acknowledge(press.alarm._event.event.EventId.Value, "panel")
    await press.alarm.set(False)
    await asyncio.sleep(0.3)
    await press.alarm.set(True)  # and raised again: a new occurrence, found by the refresh
    await asyncio.sleep(0.3)
    async with driver_for(press, options, committed):
        await until(lambda: len(committed.events) == 4, 5)
        await asyncio.sleep(0.5)
    gone, again = committed.events[2], committed.events[3]
    assert again.state == "active"
    assert again.id != first.id
    assert gone.id == first.id
    assert gone.state == "cleared"
    assert "while the agent could not see it" in gone.message
    assert len(committed.events) == 4


async def test_probe_lists_the_conditions_the_server_retains(
    press: AlarmServer, options: SessionOptions
) -> None:
    driver = OpcuaDriver("press-01", OpcuaEndpoint(press.url), [], options, events=OpcuaEvents())
    _rows, conditions = await _probe_once(driver)
    assert _conditions_table(conditions or []) == (
        "conditions: none active or waiting for acknowledgement"
    )
    await press.alarm.set(True)
    await asyncio.sleep(0.3)
    _rows, conditions = await _probe_once(driver)
    assert conditions is not None
    (line,) = _conditions_table(conditions).splitlines()[1:]
    assert line.strip().startswith("active     severity 700   Press: Guard door open")


async def test_browse_marks_the_objects_that_report_events(
    press: AlarmServer, options: SessionOptions
) -> None:
    driver = OpcuaDriver("press-01", OpcuaEndpoint(press.url), [], options)
    nodes = await _walk(driver, [(0, "Objects")], depth=3, standard=False)
    (machine,) = [n for n in nodes if n.path[-1][1] == "Press"]
    assert machine.notifier
    assert not [n for n in nodes if n.notifier and n is not machine]
    skeleton = profile_skeleton("press", press.url, ((0, "Objects"),), nodes)
    assert skeleton["events"] == {"notifiers": [machine.node_id]}
    assert [t["name"] for t in skeleton["tags"]] == ["press_guardopen"]


# -- the same condition on two independent servers (interop) ----------------------------------


async def write_guard(url: str, value: bool) -> None:
    """Open or close the guard door as the machine would: a write to Press/GuardOpen."""
    async with Client(url, timeout=10) as client:
        ns = await client.get_namespace_index(ALARMS_NAMESPACE)
        node = await client.nodes.objects.get_child([f"{ns}:Press", f"{ns}:GuardOpen"])
        await node.write_value(ua.DataValue(ua.Variant(value, ua.VariantType.Boolean)))


@pytest.fixture(params=["asyncua", "node-opcua"])
def alarm_url(request: pytest.FixtureRequest) -> str:
    """The endpoint of a server with the Press guard-door OffNormalAlarm: asyncua's simulator or
    node-opcua (tests/interop/node_opcua_alarms)."""
    fixture = "press" if request.param == "asyncua" else "node_opcua_alarms"
    found = request.getfixturevalue(fixture)
    return found.url if isinstance(found, AlarmServer) else str(found)


async def test_interop_raise_acknowledge_clear_and_refresh(
    alarm_url: str, options: SessionOptions
) -> None:
    committed = Committed()

    def driver() -> OpcuaDriver:
        made = OpcuaDriver("press-01", OpcuaEndpoint(alarm_url), [], options, events=OpcuaEvents())
        made.report_events_to(committed.sink, dict(committed.state))
        return made

    async with driver() as first:
        await asyncio.sleep(0.5)
        assert committed.events == []  # nothing retained: the refresh reports nothing
        await write_guard(alarm_url, True)
        await until(lambda: committed.states() == ["active"], 10)
        raised = committed.events[0]
        assert (raised.source, raised.severity, raised.message) == ("Press", 700, "Guard door open")
        await first.acknowledge(raised.id, "interop")
        await until(lambda: committed.states() == ["active", "acked"], 10)
        await write_guard(alarm_url, False)
        await until(lambda: committed.states() == ["active", "acked", "cleared"], 10)
        await asyncio.sleep(0.5)  # an audit event of the acknowledge would have come by now
    assert {e.id for e in committed.events} == {raised.id}
    assert committed.events[-1].fields["retain"] is False

    # Raised while the agent is away: the refresh after it connects reports it, a new id.
    await write_guard(alarm_url, True)
    await asyncio.sleep(0.3)
    async with driver():
        await until(lambda: len(committed.events) == 4, 10)
        await asyncio.sleep(0.5)
    again = committed.events[3]
    assert again.state == "active"
    assert again.id != raised.id
    assert len(committed.events) == 4
