"""The node-opcua alarm server (tests/interop/node_opcua_alarms/) keeps the Alarms & Conditions
contract the agent is written against (issue #22), checked with a plain asyncua client:
events on Server (i=2253), ConditionRefresh, Acknowledge, Retain (OPC 10000-9 §5.5.2)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest_asyncio
from asyncua import Client, ua
from asyncua.common.events import Event

NAMESPACE_URI = "urn:millstream:test:alarms"
TIMEOUT = 10.0

BASE_EVENT = ua.NodeId(ua.ObjectIds.BaseEventType)
CONDITION = ua.NodeId(ua.ObjectIds.ConditionType)
ACKNOWLEDGEABLE = ua.NodeId(ua.ObjectIds.AcknowledgeableConditionType)
ALARM = ua.NodeId(ua.ObjectIds.AlarmConditionType)
OFF_NORMAL_ALARM = ua.NodeId(ua.ObjectIds.OffNormalAlarmType)
REFRESH_START = ua.NodeId(ua.ObjectIds.RefreshStartEventType)
REFRESH_END = ua.NodeId(ua.ObjectIds.RefreshEndEventType)

# (name, TypeDefinitionId, BrowsePath); the agent's filter selects the same fields.
FIELDS: list[tuple[str, ua.NodeId, list[str]]] = [
    ("EventId", BASE_EVENT, ["EventId"]),
    ("EventType", BASE_EVENT, ["EventType"]),
    ("SourceName", BASE_EVENT, ["SourceName"]),
    ("Time", BASE_EVENT, ["Time"]),
    ("Severity", BASE_EVENT, ["Severity"]),
    ("Message", BASE_EVENT, ["Message"]),
    ("Active", ALARM, ["ActiveState", "Id"]),
    ("Acked", ACKNOWLEDGEABLE, ["AckedState", "Id"]),
    ("Retain", CONDITION, ["Retain"]),
    ("ConditionId", CONDITION, []),
]


def _event_filter() -> ua.EventFilter:
    clauses = []
    for _, type_id, path in FIELDS:
        operand = ua.SimpleAttributeOperand()
        operand.TypeDefinitionId = type_id
        operand.BrowsePath = [ua.QualifiedName(name, 0) for name in path]
        # The ConditionId is the condition object's NodeId (OPC 10000-9 §5.5.2, Table 11).
        operand.AttributeId = ua.AttributeIds.Value if path else ua.AttributeIds.NodeId
        operand.IndexRange = None
        clauses.append(operand)
    return ua.EventFilter(SelectClauses=clauses)


class Events:
    """Event notifications from the subscription, as {field name: value}, in arrival order."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.seen: list[dict[str, Any]] = []

    def event_notification(self, event: Event) -> None:
        values = [field.Value for field in event.event_fields]
        self.queue.put_nowait(dict(zip([name for name, _, _ in FIELDS], values, strict=True)))

    async def next(self) -> dict[str, Any]:
        try:
            async with asyncio.timeout(TIMEOUT):
                event = await self.queue.get()
        except TimeoutError:
            raise AssertionError(f"no event within {TIMEOUT} s; so far: {self.seen}") from None
        self.seen.append(event)
        return event

    async def expect(self, match: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
        """The next event `match` accepts (others, such as audit events, are passed over)."""
        while True:
            if match(event := await self.next()):
                return event


def _is_alarm(event: dict[str, Any]) -> bool:
    return bool(event["EventType"] == OFF_NORMAL_ALARM)


# On the test's own loop: the session loop does not run while a test does.
@pytest_asyncio.fixture(loop_scope="function")
async def client(node_opcua_alarms: str) -> AsyncIterator[Client]:
    async with Client(node_opcua_alarms, timeout=TIMEOUT) as connected:
        yield connected


async def test_alarm_lifecycle_refresh_and_acknowledge(client: Client) -> None:
    ns = await client.get_namespace_index(NAMESPACE_URI)
    objects = client.nodes.objects
    guard_open = await objects.get_child([f"{ns}:Press", f"{ns}:GuardOpen"])
    alarm = await objects.get_child([f"{ns}:Press", f"{ns}:GuardOpenAlarm"])
    assert await guard_open.read_value() is False

    events = Events()
    subscription = await client.create_subscription(50, events)
    await subscription.subscribe_events(
        ua.ObjectIds.Server, evfilter=_event_filter(), queuesize=100
    )

    await guard_open.write_value(ua.Variant(True, ua.VariantType.Boolean))
    raised = await events.expect(_is_alarm)
    assert raised["Active"] is True
    assert raised["Acked"] is False
    assert raised["Retain"] is True
    assert raised["Severity"] == 700
    assert raised["Message"].Text == "Guard door open"
    assert raised["SourceName"] == "Press"
    assert raised["ConditionId"] == alarm.nodeid
    assert isinstance(raised["EventId"], bytes)
    assert raised["EventId"]

    # OPC 10000-9 §5.5.7: ObjectId is the ConditionType, the argument the subscription id.
    await client.get_node(CONDITION).call_method(
        ua.NodeId(ua.ObjectIds.ConditionType_ConditionRefresh),
        ua.Variant(subscription.subscription_id, ua.VariantType.UInt32),
    )
    await events.expect(lambda e: e["EventType"] == REFRESH_START)
    refreshed = await events.next()
    assert _is_alarm(refreshed), refreshed
    assert refreshed["ConditionId"] == alarm.nodeid
    assert (refreshed["Active"], refreshed["Acked"], refreshed["Retain"]) == (True, False, True)
    assert (await events.next())["EventType"] == REFRESH_END

    # OPC 10000-9 §5.7.3: called on the condition, with the EventId of its latest notification.
    await client.get_node(refreshed["ConditionId"]).call_method(
        ua.NodeId(ua.ObjectIds.AcknowledgeableConditionType_Acknowledge),
        ua.Variant(refreshed["EventId"], ua.VariantType.ByteString),
        ua.Variant(ua.LocalizedText("seen by the interop test"), ua.VariantType.LocalizedText),
    )
    acked = await events.expect(_is_alarm)
    assert (acked["Active"], acked["Acked"], acked["Retain"]) == (True, True, True)

    await guard_open.write_value(ua.Variant(False, ua.VariantType.Boolean))
    cleared = await events.expect(_is_alarm)
    assert (cleared["Active"], cleared["Acked"], cleared["Retain"]) == (False, True, False)
    assert cleared["ConditionId"] == alarm.nodeid


async def test_inactive_unacknowledged_alarm_stays_retained_until_acknowledged(
    client: Client,
) -> None:
    ns = await client.get_namespace_index(NAMESPACE_URI)
    guard_open = await client.nodes.objects.get_child([f"{ns}:Press", f"{ns}:GuardOpen"])
    events = Events()
    subscription = await client.create_subscription(50, events)
    await subscription.subscribe_events(
        ua.ObjectIds.Server, evfilter=_event_filter(), queuesize=100
    )

    await guard_open.write_value(ua.Variant(True, ua.VariantType.Boolean))
    await events.expect(_is_alarm)
    await guard_open.write_value(ua.Variant(False, ua.VariantType.Boolean))
    cleared = await events.expect(_is_alarm)
    assert (cleared["Active"], cleared["Acked"], cleared["Retain"]) == (False, False, True)

    await client.get_node(cleared["ConditionId"]).call_method(
        ua.NodeId(ua.ObjectIds.AcknowledgeableConditionType_Acknowledge),
        ua.Variant(cleared["EventId"], ua.VariantType.ByteString),
        ua.Variant(ua.LocalizedText("closed again"), ua.VariantType.LocalizedText),
    )
    done = await events.expect(_is_alarm)
    assert (done["Active"], done["Acked"], done["Retain"]) == (False, True, False)

    # Nothing is retained any more: a refresh sends only its start and end.
    await client.get_node(CONDITION).call_method(
        ua.NodeId(ua.ObjectIds.ConditionType_ConditionRefresh),
        ua.Variant(subscription.subscription_id, ua.VariantType.UInt32),
    )
    await events.expect(lambda e: e["EventType"] == REFRESH_START)
    assert (await events.next())["EventType"] == REFRESH_END
