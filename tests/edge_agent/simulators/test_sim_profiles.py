"""Profiles and the example config are generated from the simulator and decode what it serves."""

from __future__ import annotations

from pathlib import Path

import pytest
from _sim_helpers import PROFILES, ROOT

from edge_agent.config import ModbusProfile, load_agent_config, load_profile, modbus_points
from edge_agent.config.points import s7_points
from edge_agent.config.s7_profile import S7Profile
from edge_agent.drivers.modbus.codec import decode_point
from edge_agent.simulators import Plant, SimulatorOptions
from edge_agent.simulators.enip_server import cpppo_tags
from edge_agent.simulators.image import RegisterImage
from edge_agent.simulators.machines import (
    MACHINE_TYPES,
    PLC_TYPES,
    LogixConveyor,
    Machine,
    S7Press,
)
from edge_agent.simulators.plc_values import S7Image
from edge_agent.simulators.profiles import agent_config, profile_name, render_profile
from edge_agent.simulators.tags import ModbusTag, S7Tag

REGEN = "run `python -m edge_agent.simulators.profiles` and commit the result"


@pytest.mark.parametrize("cls", [*MACHINE_TYPES, *PLC_TYPES], ids=lambda c: c.kind)
def test_profile_file_is_what_the_simulator_generates(cls: type[Machine]) -> None:
    path = PROFILES / f"{profile_name(cls)}.yaml"
    assert path.read_text(encoding="utf-8") == render_profile(cls), REGEN
    profile, problems = load_profile(path)
    assert not problems, problems
    assert profile is not None
    assert profile.protocol == cls.protocol
    assert [t.name for t in profile.tags] == [t.name for t in cls.tags]


def test_example_plant_config_is_generated_and_valid() -> None:
    path = ROOT / "examples" / "plant.yaml"
    assert path.read_text(encoding="utf-8") == agent_config()[0], REGEN
    loaded = load_agent_config(path, env={})
    defaults = SimulatorOptions()
    devices = loaded.config.devices
    assert [d.machine for d in devices] == [
        "press-01",
        "conveyor-01",
        "oven-01",
        "compressor-01",
        "cnc-01",
    ]
    modbus = [d.modbus for d in devices if d.modbus is not None]
    assert [m.port for m in modbus] == [defaults.modbus_port + k for k in range(4)]
    opcua = [d.opcua for d in devices if d.opcua is not None]
    assert opcua[0].url == f"opc.tcp://127.0.0.1:{defaults.opcua_port}/millstream/sim"


@pytest.mark.parametrize(
    "cls", [c for c in MACHINE_TYPES if c.protocol == "modbus"], ids=lambda c: c.kind
)
@pytest.mark.parametrize("seed", [0, 1, 99])
def test_agent_codec_decodes_the_register_image_to_the_served_values(
    cls: type[Machine], seed: int
) -> None:
    """Every tag of the profile, decoded by the agent's codec from the image, over time."""
    profile, _ = load_profile(PROFILES / f"{profile_name(cls)}.yaml")
    assert isinstance(profile, ModbusProfile)
    points = modbus_points(profile)
    n = MACHINE_TYPES.index(cls) + 1
    name = f"{cls.prefix}-01"
    plant = Plant(n, seed)
    image = RegisterImage(tuple(t for t in cls.tags if isinstance(t, ModbusTag)))
    for t in (0.0, 1.3, 9.9, 123.4, 1800.0):
        values = plant.sample(t).values[name]
        image.update(values)
        for p in points:
            span = p.length or {"int32": 2, "uint32": 2, "float32": 2}.get(p.type, 1)
            if p.type in ("int64", "uint64", "float64"):
                span = 4
            raw = image.read(p.table, p.address, span)
            assert raw is not None, p.name
            if p.table in ("coil", "discrete"):
                decoded = bool(raw[0])
            else:
                decoded = decode_point([int(r) for r in raw], p)
            assert decoded == values[p.name], (p.name, t)


def test_a_larger_plant_gets_a_config_with_one_profile_per_extra_cnc(tmp_path: Path) -> None:
    text, extra = agent_config(12)
    (tmp_path / "plant.yaml").write_text(text, encoding="utf-8")
    for file, body in extra.items():
        (tmp_path / file).write_text(body, encoding="utf-8")
    assert sorted(extra) == ["sim-cnc-mill-02.yaml"]
    loaded = load_agent_config(tmp_path / "plant.yaml", env={})
    assert len(loaded.config.devices) == 12
    cnc2 = next(d for d in loaded.devices if d.device.machine == "cnc-02")
    assert all("2:cnc-02" in (t.browse_path or "") for t in cnc2.profile.tags)  # type: ignore[union-attr]


@pytest.mark.parametrize("seed", [0, 1, 99])
def test_agent_s7_decoding_of_the_data_block_gives_the_served_values(seed: int) -> None:
    """Every tag of sim-s7-press, decoded by the agent's S7 points from the served DB bytes."""
    profile, _ = load_profile(PROFILES / "sim-s7-press.yaml")
    assert isinstance(profile, S7Profile)
    points = s7_points(profile)
    plant = Plant(1, seed, extra=[S7Press])
    image = S7Image(tuple(t for t in S7Press.tags if isinstance(t, S7Tag)))
    for t in (0.0, 1.3, 9.9, 123.4, 1800.0):
        values = plant.sample(t).values["s7-press-01"]
        image.update(values)
        for p in points:
            block = image.blocks[p.address.db]
            data = bytes(block[p.address.byte : p.address.byte + p.size])
            assert p.value(data) == values[p.name], (p.name, t)


def test_the_logix_machine_is_served_as_cpppo_tags_with_its_array_whole() -> None:
    assert cpppo_tags(LogixConveyor.tags) == [
        "Program:MainProgram.BeltSpeed=REAL",
        "Program:MainProgram.SpeedSetpoint=REAL",
        "Conveyor.Motor.Current=REAL",
        "Conveyor.Motor.Temp=INT",
        "Conveyor.LoadCell=INT",
        "Conveyor.Distance=LREAL",
        "Conveyor.Jammed=BOOL",
        "Conveyor.Running=BOOL",
        "Conveyor.PhotoEye=BOOL",
        "Counters=DINT[2]",
        "Program:MainProgram.LastItem=SSTRING",
        "Model=SSTRING",
    ]


def test_a_config_with_the_plc_machines_names_their_ports(tmp_path: Path) -> None:
    text, extra = agent_config(5, s7_port=1102, enip_port=44818)
    assert extra == {}
    (tmp_path / "plant.yaml").write_text(text, encoding="utf-8")
    loaded = load_agent_config(tmp_path / "plant.yaml", env={})
    devices = {d.device.machine: d.device for d in loaded.devices}
    s7, enip = devices["s7-press-01"].s7, devices["logix-conveyor-01"].enip
    assert s7 is not None
    assert (s7.port, s7.rack, s7.slot) == (1102, 0, 1)
    assert enip is not None
    assert (enip.port, enip.slot) == (44818, 0)
    assert agent_config()[0] == agent_config(5, s7_port=None, enip_port=None)[0]
