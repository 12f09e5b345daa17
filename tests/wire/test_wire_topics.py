"""Topic building and parsing for every kind of v1 topic."""

from __future__ import annotations

import pytest

import wire


def test_builders_write_the_documented_topics() -> None:
    assert wire.telemetry_topic("plant1", "line3", "cnc7") == "ms/v1/plant1/line3/cnc7/telemetry"
    assert wire.status_topic("plant1", "line3", "cnc7") == "ms/v1/plant1/line3/cnc7/status"
    assert wire.meta_topic("plant1", "line3", "cnc7") == "ms/v1/plant1/line3/cnc7/meta"
    assert wire.agent_status_topic("line3-pc") == "ms/v1/agents/line3-pc/status"
    assert wire.cmd_topic("line3-pc") == "ms/v1/agents/line3-pc/cmd"
    assert wire.cmd_result_topic("line3-pc") == "ms/v1/agents/line3-pc/cmd/res"
    assert wire.receipt_topic("line3-pc") == "ms/v1/receipts/line3-pc"


@pytest.mark.parametrize(
    ("topic", "expected"),
    [
        ("ms/v1/p/l/m/telemetry", wire.MachineTopic("telemetry", "p", "l", "m")),
        ("ms/v1/p/l/m/status", wire.MachineTopic("status", "p", "l", "m")),
        ("ms/v1/p/l/m/meta", wire.MachineTopic("meta", "p", "l", "m")),
        ("ms/v1/agents/a-1/status", wire.AgentTopic("status", "a-1")),
        ("ms/v1/agents/a_1/cmd", wire.AgentTopic("cmd", "a_1")),
        ("ms/v1/agents/A1/cmd/res", wire.AgentTopic("cmd_res", "A1")),
        ("ms/v1/receipts/pc", wire.ReceiptTopic("pc")),
        # Only the site position is reserved: a line or machine may be called "agents".
        (
            "ms/v1/p/agents/receipts/telemetry",
            wire.MachineTopic("telemetry", "p", "agents", "receipts"),
        ),
    ],
)
def test_parse_topic_classifies_and_round_trips(topic: str, expected: wire.Topic) -> None:
    assert wire.parse_topic(topic) == expected
    assert str(expected) == topic


@pytest.mark.parametrize(
    ("topic", "field"),
    [
        ("ms/v1/p/l/m/alarms", "topic"),
        ("ms/v1/p/l/telemetry", "topic"),
        ("ms/v1/p/l/m/n/telemetry", "topic"),
        ("ms/v1/agents/a/state", "topic"),
        ("ms/v1/agents/a/cmd/result", "topic"),
        ("ms/v1/agents/+/status", "agent_id"),
        ("ms/v1/receipts/#", "src"),
        ("ms/v1/receipts/a/b", "topic"),
        ("ms/v1/agents/x/y/status", "site"),
        ("MS/v1/p/l/m/telemetry", "topic"),
        ("ms/v1/p/l/m/telemetry\n", "topic"),
        ("ms/v1/p/l/m\x00/telemetry", "machine"),
        ("", "topic"),
    ],
)
def test_parse_topic_refuses_with_the_segment_named(topic: str, field: str) -> None:
    with pytest.raises(wire.PayloadError) as caught:
        wire.parse_topic(topic)
    assert caught.value.reason == "bad_topic"
    assert caught.value.field == field
    assert str(caught.value).startswith(f"{field}: ")


def test_parse_topic_refuses_a_non_string() -> None:
    with pytest.raises(wire.PayloadError) as caught:
        wire.parse_topic(b"ms/v1/p/l/m/telemetry")  # type: ignore[arg-type]
    assert caught.value.reason == "bad_topic"


@pytest.mark.parametrize(
    ("build", "field"),
    [
        (lambda: wire.telemetry_topic("agents", "l", "m"), "site"),
        (lambda: wire.status_topic("receipts", "l", "m"), "site"),
        (lambda: wire.telemetry_topic("p", "line 3", "m"), "line"),
        (lambda: wire.telemetry_topic("p", "l", "m/x"), "machine"),
        (lambda: wire.agent_status_topic("a" * 65), "agent_id"),
        (lambda: wire.cmd_topic(""), "agent_id"),
        (lambda: wire.receipt_topic("+"), "src"),
    ],
)
def test_builders_refuse_segments_the_hub_would_refuse(build: object, field: str) -> None:
    assert callable(build)
    with pytest.raises(wire.PayloadError) as caught:
        build()
    assert (caught.value.reason, caught.value.field) == ("bad_topic", field)


def test_subscription_filters_cover_the_topics() -> None:
    assert wire.TELEMETRY_FILTER == "ms/v1/+/+/+/telemetry"
    assert wire.MACHINE_STATUS_FILTER == "ms/v1/+/+/+/status"
    assert wire.MACHINE_META_FILTER == "ms/v1/+/+/+/meta"
    assert wire.AGENT_STATUS_FILTER == "ms/v1/agents/+/status"
