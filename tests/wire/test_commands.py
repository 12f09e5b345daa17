"""Commands and results on the wire: round trips, and every refusal naming its field."""

from __future__ import annotations

import json

import pytest

import wire

ID = "0b6f3a52-8c1e-4d0f-9a57-3c2b1e4f6a70"
TOPIC = "ms/v1/agents/line3-pc/cmd"
WRITE = {
    "v": 1, "id": ID, "kind": "write", "issued_by": "ann", "issued_at": 1_000,
    "expires_at": 6_000, "machine": "oven-01", "tag": "zone1_setpoint", "value": 185.0,
}  # fmt: skip


def test_a_write_and_its_result_round_trip() -> None:
    agent, command = wire.parse_command(TOPIC, json.dumps(WRITE).encode())
    assert agent == "line3-pc"
    assert (command.machine, command.tag, command.value) == ("oven-01", "zone1_setpoint", 185.0)
    assert wire.parse_command(TOPIC, wire.encode_command(command))[1] == command
    result = wire.CommandResult(id=ID, status="done", ts=2_000, previous=180.0, read_back=185.0)
    payload = wire.encode_command_result(result)
    assert json.loads(payload)["v"] == 1
    assert wire.parse_command_result(TOPIC + "/res", payload) == ("line3-pc", result)


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        ({"id": "not-a-uuid"}, "id", "must be a UUID in lower-case hex"),
        ({"id": ID.upper()}, "id", "must be a UUID in lower-case hex"),
        ({"kind": "reboot"}, "kind", "'write', 'call', 'config' or 'acknowledge'"),
        ({"kind": "call"}, "payload", "a call names machine and method"),
        ({"value": None}, "payload", "a write names machine, tag and value"),
        ({"expires_at": 999}, "payload", "expires_at is before issued_at"),
        ({"issued_by": "a\\u0000b"}, "issued_by", "U+0000"),
        ({"machine": "oven 01"}, "machine", "letters, digits, _ or -"),
        ({"extra": 1}, "extra", "is not a field"),
    ],
)
def test_a_broken_command_names_what_is_wrong(
    change: dict[str, object], field: str, words: str
) -> None:
    body = json.dumps({**WRITE, **change}).replace("\\\\u0000", "\\u0000")
    with pytest.raises(wire.PayloadError) as info:
        wire.parse_command(TOPIC, body.encode())
    assert info.value.field == field
    assert words in str(info.value)


def test_a_call_and_its_outputs_round_trip() -> None:
    body = {**WRITE, "kind": "call", "method": "reset_counter", "args": [3, "night"]}
    del body["tag"], body["value"]
    _agent, command = wire.parse_command(TOPIC, json.dumps(body).encode())
    assert (command.method, command.args) == ("reset_counter", (3, "night"))
    assert wire.parse_command(TOPIC, wire.encode_command(command))[1] == command
    result = wire.CommandResult(id=ID, status="done", ts=2_000, outputs=(0, True))
    assert wire.parse_command_result(TOPIC + "/res", wire.encode_command_result(result))[1] == (
        result
    )
    # A write carries no args on the wire.
    assert b"args" not in wire.encode_command(
        wire.parse_command(TOPIC, json.dumps(WRITE).encode())[1]
    )


def test_commands_and_results_stay_on_their_topics() -> None:
    with pytest.raises(wire.PayloadError, match="not a command topic"):
        wire.parse_command(TOPIC + "/res", json.dumps(WRITE).encode())
    with pytest.raises(wire.PayloadError, match="not a command result topic"):
        wire.parse_command_result(TOPIC, b"{}")


def test_a_config_command_carries_a_bundle_of_relative_files() -> None:
    body = {
        **WRITE, "kind": "config",
        "config": {"version": 3, "files": {"agent.yaml": "agent: {}\n", "p/x.yaml": "tags: []\n"},
                   "rollback_after": 30},
    }  # fmt: skip
    del body["machine"], body["tag"], body["value"]
    _agent, command = wire.parse_command(TOPIC, json.dumps(body).encode())
    assert command.config is not None
    assert (command.config.version, command.config.rollback_after) == (3, 30.0)
    assert wire.parse_command(TOPIC, wire.encode_command(command))[1] == command


@pytest.mark.parametrize(
    ("files", "words"),
    [
        ({"x.yaml": ""}, "carries agent.yaml"),
        ({"agent.yaml": "", "../etc/passwd": ""}, "should match pattern"),
        ({"agent.yaml": "", "/etc/passwd": ""}, "should match pattern"),
        ({"agent.yaml": "", "a/.hidden": ""}, "should match pattern"),
        ({"agent.yaml": "a\\u0000"}, "U+0000"),
    ],
)
def test_a_config_bundle_names_only_plain_relative_files(files: dict[str, str], words: str) -> None:
    body = {**WRITE, "kind": "config", "config": {"version": 1, "files": files}}
    del body["machine"], body["tag"], body["value"]
    raw = json.dumps(body).replace("\\\\u0000", "\\u0000")
    with pytest.raises(wire.PayloadError) as info:
        wire.parse_command(TOPIC, raw.encode())
    assert words in str(info.value)


ACKNOWLEDGE = {
    **{k: v for k, v in WRITE.items() if k not in {"tag", "value"}},
    "kind": "acknowledge", "machine": "cnc-01", "event": "c7f3a90b12e4", "comment": "on it",
}  # fmt: skip


def test_an_acknowledge_names_an_event_and_round_trips() -> None:
    _agent, command = wire.parse_command(TOPIC, json.dumps(ACKNOWLEDGE).encode())
    assert (command.machine, command.event, command.comment) == ("cnc-01", "c7f3a90b12e4", "on it")
    assert wire.parse_command(TOPIC, wire.encode_command(command))[1] == command
    # Without a comment it travels without one (so does every other kind).
    bare = {k: v for k, v in ACKNOWLEDGE.items() if k != "comment"}
    _agent, command = wire.parse_command(TOPIC, json.dumps(bare).encode())
    assert command.comment == ""
    assert b"comment" not in wire.encode_command(command)
    assert b"comment" not in wire.encode_command(
        wire.parse_command(TOPIC, json.dumps(WRITE).encode())[1]
    )


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        ({"event": None}, "payload", "an acknowledge names machine and event"),
        ({"machine": None}, "payload", "an acknowledge names machine and event"),
        ({"event": "has space"}, "event", "should match pattern"),
        ({"event": "x" * 129}, "event", "should match pattern"),
        ({"comment": "c" * 513}, "comment", "is 513 characters, the limit is 512"),
        ({"comment": "a\\u0000b"}, "comment", "U+0000"),
    ],
)
def test_a_broken_acknowledge_names_what_is_wrong(
    change: dict[str, object], field: str, words: str
) -> None:
    body = {k: v for k, v in {**ACKNOWLEDGE, **change}.items() if v is not None}
    raw = json.dumps(body).replace("\\\\u0000", "\\u0000")
    with pytest.raises(wire.PayloadError) as info:
        wire.parse_command(TOPIC, raw.encode())
    assert info.value.field == field
    assert words in str(info.value)


def test_an_acknowledge_comment_may_be_512_characters_of_any_script() -> None:
    body = {**ACKNOWLEDGE, "comment": "ä" * 512}  # 1,024 bytes of UTF-8: the wire's text limit
    assert wire.parse_command(TOPIC, json.dumps(body).encode())[1].comment == "ä" * 512
