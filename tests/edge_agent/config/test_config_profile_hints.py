"""Every hint a technician can get from a broken profile, with file, path and hint asserted."""

from __future__ import annotations

from pathlib import Path

import pytest
from _config_helpers import Write, config_text, profile_text

from edge_agent.config import load_agent_config
from edge_agent.errors import ConfigError, ConfigProblem

PREFIX = "devices[0].profile test-device: "


def problems_for(write: Write, tags: str) -> list[ConfigProblem]:
    write("test-device.yaml", profile_text(tags))
    config = write("agent.yaml", config_text())
    with pytest.raises(ConfigError) as info:
        load_agent_config(config, env={})
    return list(info.value.problems)


def only(problems: list[ConfigProblem]) -> ConfigProblem:
    assert len(problems) == 1, "\n".join(map(str, problems))
    return problems[0]


@pytest.mark.parametrize(
    ("tag", "path", "message", "hint"),
    [
        (
            "{name: t, table: holding, address: 40001, type: float32}",
            "tags[0].address",
            "40001 looks like a 4xxxx reference",
            "use table: holding, address: 0",
        ),
        (
            "{name: t, table: holding, address: 400101, type: uint16}",
            "tags[0].address",
            "400101 looks like a 4xxxxx reference",
            "use table: holding, address: 100",
        ),
        (
            "{name: t, table: input, address: 30011, type: float32}",
            "tags[0].address",
            "30011 looks like a 3xxxx reference",
            "use table: input, address: 10",
        ),
        (
            "{name: t, table: discrete, address: 10002, type: bool}",
            "tags[0].address",
            "10002 looks like a 1xxxx reference",
            "use table: discrete, address: 1",
        ),
        (
            "{name: t, table: coil, address: 00017, type: bool}",
            "tags[0].address",
            "00017 looks like a 0xxxx coil reference",
            "use table: coil, address: 16",
        ),
        (
            "{name: t, table: holding, address: 0, type: float32, length: 1}",
            "tags[0].length",
            "float32 spans exactly 2 registers, not length: 1",
            "remove length",
        ),
        (
            "{name: t, table: holding, address: 0, type: int64, length: 2}",
            "tags[0].length",
            "int64 spans exactly 4 registers",
            "remove length",
        ),
        (
            "{name: t, table: holding, address: 0, type: string}",
            "tags[0].length",
            "type string needs length",
            "add length: the number of registers",
        ),
        (
            "{name: t, table: holding, address: 0, type: float32, bit: 3}",
            "tags[0].bit",
            "bit needs a 16-bit register, but float32 spans 2 registers",
            "type: bool with bit",
        ),
        (
            "{name: t, table: holding, address: 0, type: uint16, bit: 3}",
            "tags[0].bit",
            "which is a bool",
            "use type: bool with bit: 3",
        ),
        (
            "{name: t, table: holding, address: 0, type: bool, bit: 16}",
            "tags[0].bit",
            "bit 16 is outside 0..15",
            "numbered 0 (least significant) to 15",
        ),
        (
            "{name: t, table: input, address: 0, type: bool}",
            "tags[0].bit",
            "type bool on a input register needs bit",
            "add bit: 0..15",
        ),
        (
            "{name: t, table: holding, address: 0, type: int16, order: CDAB}",
            "tags[0].order",
            "order has no effect on int16, a single register",
            "remove order",
        ),
        (
            "{name: t, table: coil, address: 0, type: int16}",
            "tags[0].type",
            "a coil is a single bit",
            "use type: bool",
        ),
        (
            "{name: t, table: coil, address: 0, type: bool, bit: 1}",
            "tags[0].bit",
            "bit does not apply to a coil",
            "remove bit",
        ),
        (
            "{name: t, table: holding, address: 0, type: string, length: 4, scale: 2}",
            "tags[0].scale",
            "scale applies to numbers, not to type string",
            "remove scale",
        ),
        (
            "{name: t, table: holding, address: 0, type: int16, scale: 0}",
            "tags[0].scale",
            "scale 0",
            "use 1 for no scaling",
        ),
        (
            "{name: t, table: holding, address: 65535, type: float32}",
            "tags[0].address",
            "spans registers up to 65536",
            "check the address",
        ),
        (
            "{name: t, table: holding, address: 0, type: float32, scael: 2}",
            "tags[0].scael",
            "unknown key 'scael'",
            "did you mean scale?",
        ),
        (
            "{name: t, table: holdng, address: 0, type: float32}",
            "tags[0].table",
            "'holdng'",
            "did you mean holding?",
        ),
        (
            "{name: t, table: holding, address: 0, type: float}",
            "tags[0].type",
            "'float'",
            "did you mean float32?",
        ),
        (
            "{name: t, table: holding, address: 0, type: float32, order: abcd}",
            "tags[0].order",
            "'abcd'",
            "did you mean ABCD?",
        ),
        (
            "{name: t, table: holding, type: float32}",
            "tags[0].address",
            "required key 'address' is missing",
            "0-based register address",
        ),
        (
            "{name: bad name, table: holding, address: 0, type: float32}",
            "tags[0].name",
            "'bad name' is not a valid name",
            "e.g. bad-name",
        ),
        (
            "{name: t, table: input, address: 0, type: uint16, writable: true}",
            "tags[0].writable",
            "input registers are read-only in Modbus",
            "writable tags live in table: holding (registers) or table: coil (bits)",
        ),
        (
            "{name: t, table: holding, address: 0, type: uint16, max: 10}",
            "tags[0].max",
            "max bounds what commands may write, but the tag is not writable",
            "add writable: true, or remove max (for alert limits use limits:)",
        ),
        (
            "{name: t, table: coil, address: 0, type: bool, writable: true, min: 0}",
            "tags[0].min",
            "min applies to numbers, not to type bool",
            "remove min",
        ),
        (
            "{name: t, table: holding, address: 0, type: int16, writable: true, min: 9, max: 1}",
            "tags[0].max",
            "max 1 is below min 9",
            "swap them",
        ),
        (
            "{name: t, table: holding, address: 0, type: float32, event: {on: change}}",
            "tags[0].event",
            "a float32 tag cannot raise events",
            "put event: on the alarm bit",
        ),
        (
            "{name: t, table: holding, address: 0, type: uint16, event: {on: rising}}",
            "tags[0].event.on",
            "rising is an edge of a bit, and this tag is a uint16",
            "use on: change for a code register",
        ),
        (
            "{name: t, table: coil, address: 0, type: bool,"
            " event: {on: rising, message: {1: Overload}}}",
            "tags[0].event.message",
            "a map of codes to texts is for a code register",
            "give one text",
        ),
    ],
)
def test_broken_tag_gets_located_hint(
    write: Write, tag: str, path: str, message: str, hint: str
) -> None:
    problem = only(problems_for(write, f"  - {tag}"))
    assert Path(problem.file).name == "test-device.yaml"
    assert problem.path == PREFIX + path
    assert message in problem.message
    assert hint in problem.hint
    assert problem.line == 8  # the tag's line in the profile file


def test_five_digit_address_in_another_table_is_a_plain_address(write: Write) -> None:
    # Devices do map registers at 40001+ in the input table; only table + prefix together
    # make a reference.
    write(
        "test-device.yaml", profile_text("  - {name: t, table: input, address: 40001, type: int16}")
    )
    loaded = load_agent_config(write("agent.yaml", config_text()), env={})
    assert loaded.devices[0].profile.tags[0].address == 40001


def test_duplicate_tag_names_reported_with_other_problems(write: Write) -> None:
    problems = problems_for(
        write,
        """\
          - {name: a, table: holding, address: 0, type: float32}
          - {name: a, table: holding, address: 2, type: string}
        """,
    )
    by_path = {p.path: p for p in problems}
    assert set(by_path) == {PREFIX + "tags[1].length", PREFIX + "tags[1].name"}
    duplicate = by_path[PREFIX + "tags[1].name"]
    assert "duplicate tag name 'a' (first used at tags[0])" in duplicate.message
    assert "unique" in duplicate.hint
    assert duplicate.line == 9


def test_several_problems_in_one_tag_are_all_reported(write: Write) -> None:
    problems = problems_for(
        write, "  - {name: t, table: holding, address: 40001, type: float32, bit: 20, order: XY}"
    )
    paths = sorted(p.path for p in problems)
    assert paths == [PREFIX + "tags[0].order"]  # literal errors stop the tag's own checks
    problems = problems_for(
        write, "  - {name: t, table: holding, address: 40001, type: float32, bit: 20}"
    )
    assert sorted(p.path for p in problems) == [
        PREFIX + "tags[0].address",
        PREFIX + "tags[0].bit",
        PREFIX + "tags[0].bit",
    ]


def test_profile_name_must_match_file_name(write: Write) -> None:
    write(
        "test-device.yaml",
        profile_text("  - {name: t, table: input, address: 0, type: int16}", name="other"),
    )
    with pytest.raises(ConfigError) as info:
        load_agent_config(write("agent.yaml", config_text()), env={})
    problem = only(list(info.value.problems))
    assert problem.path == PREFIX + "profile"
    assert "use profile: test-device" in problem.hint


def test_unknown_protocol_suggests_closest(write: Write) -> None:
    text = profile_text("  - {name: t, table: input, address: 0, type: int16}")
    write("test-device.yaml", text.replace("protocol: modbus", "protocol: modbsu"))
    with pytest.raises(ConfigError) as info:
        load_agent_config(write("agent.yaml", config_text()), env={})
    problem = only(list(info.value.problems))
    assert problem.path == PREFIX + "protocol"
    assert problem.hint == "did you mean modbus?"
