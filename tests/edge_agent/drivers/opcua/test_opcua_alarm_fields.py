"""The pure half of OPC-UA Alarms & Conditions (edge_agent/drivers/opcua/alarms.py): what a
notification's fields become when a server sends what the wire contract cannot carry."""

from __future__ import annotations

import datetime as dt
from typing import Any

from asyncua import ua

from edge_agent.drivers.opcua.alarms import ConditionTracker, event_filter, field_name, select_names

NAMES = select_names(["2:BatchId"])
T = dt.datetime(2026, 12, 7, 8, 0, tzinfo=dt.UTC)


def fields(**given: Any) -> list[Any]:
    return [given.get(name.replace("/", "_")) for name in NAMES]


def tracker() -> ConditionTracker:
    return ConditionTracker(NAMES, {}, lambda: 1_000)


def test_select_clause_matches_the_names() -> None:
    flt = event_filter(["2:BatchId"])
    assert len(flt.SelectClauses) == len(NAMES)
    assert NAMES[-1] == "BatchId"
    assert field_name("2:Recipe/3:Name") == "Name"
    condition_id = flt.SelectClauses[NAMES.index("ConditionId")]
    assert condition_id.AttributeId == ua.AttributeIds.NodeId
    assert condition_id.BrowsePath == []


def test_a_plain_event_is_named_by_its_event_id_and_brought_inside_the_contract() -> None:
    seen = tracker().see(
        fields(
            EventId=b"\x01\x02",
            EventType=ua.NodeId(ua.Int32(ua.ObjectIds.SystemEventType)),
            SourceName="Press",
            Time=T,
            Severity=0,
            Message=ua.LocalizedText("over\x00heat"),
            BatchId="B-17",
        )
    )
    (event,) = seen.events
    assert event.id == "0102"
    assert event.type == "SystemEventType"
    assert event.severity == 1  # OPC-UA's scale starts at 1
    assert event.message == "over"  # a NUL ends a PLC string, as it ends the C string
    assert event.state is None
    assert event.fields == {"BatchId": "B-17"}
    assert event.ts == int(T.timestamp() * 1000)


def test_a_branch_is_not_the_condition_and_a_node_id_becomes_a_valid_event_id() -> None:
    t = tracker()
    condition = ua.NodeId("Press Guard;1", 2)
    branch = t.see(fields(ConditionId=condition, BranchId=ua.NodeId(7, 2), Retain=True))
    assert branch.events == []
    assert branch.changed == {}
    (raised,) = t.see(
        fields(
            ConditionId=condition,
            ActiveState_Id=True,
            AckedState_Id=False,
            Retain=True,
            Time=T,
            Severity=1200,
        )
    ).events
    assert raised.id.endswith(f":{int(T.timestamp() * 1000)}")
    assert " " not in raised.id
    assert raised.severity == 1000
    assert raised.state == "active"
    assert raised.source == "server"
