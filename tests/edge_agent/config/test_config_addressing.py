"""A profile's `addressing`: auto (refuse references), offset (SunSpec at 40000+), reference."""

from __future__ import annotations

from pathlib import Path

import pytest
from _config_helpers import Write, config_text, profile_text

from edge_agent.config import ModbusProfile, load_agent_config, modbus_points
from edge_agent.errors import ConfigError, ConfigProblem

PREFIX = "devices[0].profile test-device: "

# The start of a SunSpec map (SunSpec Information Model Specification: base address 40000,
# "SunS" marker, then the common model 1 with its ID and length).
SUNSPEC_TAGS = """\
  - {name: sunspec_id, table: holding, address: 40000, type: uint32}
  - {name: common_id, table: holding, address: 40002, type: uint16}
  - {name: common_length, table: holding, address: 40003, type: uint16}
  - {name: ac_power, table: holding, address: 40083, type: int16}
"""


def profile_with(tags: str, addressing: str | None) -> str:
    text = profile_text(tags)
    if addressing is None:
        return text
    return text.replace(
        "source: test fixture\n", f"source: test fixture\naddressing: {addressing}\n"
    )


def load(write: Write, tags: str, addressing: str | None) -> ModbusProfile:
    write("test-device.yaml", profile_with(tags, addressing))
    loaded = load_agent_config(write("agent.yaml", config_text()), env={})
    profile = loaded.devices[0].profile
    assert isinstance(profile, ModbusProfile)
    return profile


def problems(write: Write, tags: str, addressing: str | None) -> list[ConfigProblem]:
    write("test-device.yaml", profile_with(tags, addressing))
    with pytest.raises(ConfigError) as info:
        load_agent_config(write("agent.yaml", config_text()), env={})
    return list(info.value.problems)


def wire(profile: ModbusProfile) -> dict[str, tuple[str, int]]:
    return {p.name: (p.table, p.address) for p in modbus_points(profile)}


def test_sunspec_map_at_40000_loads_with_addressing_offset(write: Write) -> None:
    profile = load(write, SUNSPEC_TAGS, "offset")
    assert profile.addressing == "offset"
    assert wire(profile) == {
        "sunspec_id": ("holding", 40000),
        "common_id": ("holding", 40002),
        "common_length": ("holding", 40003),
        "ac_power": ("holding", 40083),
    }


def test_without_addressing_the_same_map_is_refused_with_the_way_out(write: Write) -> None:
    found = problems(write, SUNSPEC_TAGS, None)
    # 40000 is not a reference (those start at 40001); the other three look like ones.
    assert [p.path for p in found] == [PREFIX + f"tags[{i}].address" for i in (1, 2, 3)]
    first = found[0]
    assert Path(first.file).name == "test-device.yaml"
    assert first.line == 9
    assert "40002 looks like a 4xxxx reference" in first.message
    assert "use table: holding, address: 1" in first.hint
    assert "addressing: reference" in first.hint
    assert "really uses address 40002" in first.hint
    assert "addressing: offset" in first.hint


def test_six_digit_reference_hint_offers_reference_addressing_only(write: Write) -> None:
    (problem,) = problems(
        write, "  - {name: t, table: holding, address: 440084, type: int16}", None
    )
    assert "440084 looks like a 4xxxxx reference" in problem.message
    assert "use table: holding, address: 40083" in problem.hint
    assert "addressing: reference" in problem.hint
    assert "addressing: offset" not in problem.hint  # 440084 can never be a real address


def test_reference_addressing_takes_the_manuals_numbers(write: Write) -> None:
    profile = load(
        write,
        """\
          - {name: h5, table: holding, address: 40001, type: float32}
          - {name: h6, table: holding, address: 400101, type: uint16}
          - {name: sunspec_power, table: holding, address: 440084, type: int16}
          - {name: i5, table: input, address: 30011, type: float32}
          - {name: i6, table: input, address: 365536, type: uint16}
          - {name: d5, table: discrete, address: 10002, type: bool}
          - {name: c_padded, table: coil, address: 00017, type: bool}
          - {name: c_plain, table: coil, address: 1, type: bool}
          - {name: own, table: holding, address: 7, type: uint16, addressing: offset}
        """,
        "reference",
    )
    tags = {t.name: t for t in profile.tags}
    assert tags["h5"].address == 40001  # the model keeps what the file says
    assert tags["own"].addressing == "offset"
    assert wire(profile) == {
        "h5": ("holding", 0),
        "h6": ("holding", 100),
        "sunspec_power": ("holding", 40083),
        "i5": ("input", 10),
        "i6": ("input", 65535),
        "d5": ("discrete", 1),
        "c_padded": ("coil", 16),
        "c_plain": ("coil", 0),
        "own": ("holding", 7),
    }


def test_reference_addressing_refuses_what_is_not_a_reference(write: Write) -> None:
    found = problems(
        write,
        """\
          - {name: zero_based, table: holding, address: 17, type: uint16}
          - {name: wrong_table, table: holding, address: 30005, type: uint16}
          - {name: coil_zero, table: coil, address: 0, type: bool}
          - {name: past_the_end, table: input, address: 365536, type: float32}
        """,
        "reference",
    )
    by_path = {p.path: p for p in found}
    assert set(by_path) == {PREFIX + f"tags[{i}].address" for i in range(4)}

    zero_based = by_path[PREFIX + "tags[0].address"]
    assert zero_based.line == 9
    assert "17 is not a holding reference" in zero_based.message
    assert (
        "holding addresses are written 40001..49999 or 400001..465536 (40001 = address 0)"
        in zero_based.hint
    )
    assert "for 0-based addresses set addressing: offset" in zero_based.hint
    assert "coil" not in zero_based.hint

    wrong_table = by_path[PREFIX + "tags[1].address"]
    assert "30005 refers to the input table: use table: input" in wrong_table.hint

    assert (
        "coil addresses are written 1..65536 (1 = address 0)"
        in by_path[PREFIX + "tags[2].address"].hint
    )
    # 365536 is input address 65535; a float32 there would need register 65536 too.
    assert "spans registers up to 65536" in by_path[PREFIX + "tags[3].address"].message


def test_offset_addressing_still_ends_at_65535(write: Write) -> None:
    (problem,) = problems(
        write, "  - {name: t, table: holding, address: 65536, type: uint16}", "offset"
    )
    assert problem.path == PREFIX + "tags[0].address"
    assert "65536 is beyond 65535" in problem.message


def test_misspelt_addressing_names_the_key_and_the_value_to_type(write: Write) -> None:
    (problem,) = problems(
        write, "  - {name: t, table: holding, address: 0, type: uint16}", "refernce"
    )
    assert problem.path == PREFIX + "addressing"
    assert Path(problem.file).name == "test-device.yaml"
    assert problem.line == 6
    assert "reference" in problem.hint
