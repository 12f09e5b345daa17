"""`edge-agent browse` on a Logix controller, as a technician runs it: the tag list from a real
CIP server that answers it (cpppo's Logix simulator with the Symbol Object's service 0x55,
edge_agent/simulators/enip_symbols.py), the profile skeleton it writes validated and probed; the
simulator's Logix conveyor answering too; errors that name the next step."""

from __future__ import annotations

import asyncio
import json
import struct
import subprocess
import sys
from pathlib import Path

import yaml

from edge_agent.config import load_profile
from edge_agent.config.enip_profile import EnipProfile
from edge_agent.drivers.enip.driver import EnipEndpoint
from edge_agent.drivers.enip.tag_list import ListedTag, TagListing, list_tags, profile_skeleton
from edge_agent.simulators.enip_server import LogixDevice
from edge_agent.simulators.enip_symbols import PROGRAM_SYMBOL_TYPE, list_reply, symbols
from edge_agent.simulators.faults import FaultBook
from edge_agent.simulators.machines.logix_conveyor import LogixConveyor
from tests.edge_agent.drivers.enip.enip_harness import enip_server
from tests.harness import free_port

EDGE_AGENT = str(Path(sys.executable).with_name("edge-agent"))
# Controller tags and two programs' tags, as cpppo declares them.
TAGS = {
    "Speed": "REAL", "Running": "BOOL", "Count": "DINT", "Zones": "DINT[4]", "Label": "SSTRING",
    "Big": "LREAL", "Small": "INT", "Wide": "UDINT",
    "Program:MainProgram.State": "DINT", "Program:MainProgram.Setpoint": "REAL",
    "Program:Packing.Boxes": "INT[3]",
}  # fmt: skip
# What browse prints for each: the type as Studio 5000 writes it (pylogix calls SSTRING STRING).
LISTED = {
    "Speed": "REAL", "Running": "BOOL", "Count": "DINT", "Zones": "DINT[4]", "Label": "STRING",
    "Big": "LREAL", "Small": "INT", "Wide": "UDINT",
    "Program:MainProgram.State": "DINT", "Program:MainProgram.Setpoint": "REAL",
    "Program:Packing.Boxes": "INT[3]",
}  # fmt: skip


def _config(folder: Path, port: int, profile: str) -> Path:
    config = folder / "agent.yaml"
    config.write_text(
        "agent: {id: enip-pc, site: plant, line: l1}\n"
        "mqtt: {url: 'mqtt://127.0.0.1:1883', receipts: false}\n"
        "devices:\n"
        f"  - {{machine: logix-01, profile: {profile}, "
        f"enip: {{host: 127.0.0.1, port: {port}, timeout_ms: 2000}}}}\n"
    )
    return config


def _agent(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [EDGE_AGENT, *args], capture_output=True, text=True, timeout=60, check=False
    )


def test_browse_lists_the_controllers_tags_and_its_skeleton_validates_and_probes(
    tmp_path: Path,
) -> None:
    with enip_server(TAGS) as server:
        server.set(Speed=42.5, Running=True, Zones_2=7, Label="lot-7",
                   **{"Program:MainProgram.State": 3})  # fmt: skip
        # The device starts on the shipped example profile: browse only needs its address.
        config = _config(tmp_path, server.port, "rockwell-compactlogix-line")
        out = tmp_path / "logix-browsed.yaml"
        done = _agent("browse", str(config), "--device", "logix-01", "--profile-out", str(out))
        assert done.returncode == 0, done.stdout + done.stderr
        lines = [line.split() for line in done.stdout.splitlines() if line.strip()]
        listed = {parts[0]: parts[1] for parts in lines if len(parts) == 2}
        assert listed == LISTED
        assert "listing Program:MainProgram (1/2)" in done.stderr
        assert "listing Program:Packing (2/2)" in done.stderr
        assert "wrote 16 tags" in done.stdout

        skeleton = yaml.safe_load(out.read_text())
        assert skeleton["protocol"] == "enip"
        by_tag = {t["tag"]: t for t in skeleton["tags"]}
        assert by_tag["Speed"]["type"] == "real"
        assert by_tag["Label"]["type"] == "string"
        assert [t for t in by_tag if t.startswith("Zones")] == [f"Zones[{i}]" for i in range(4)]
        assert by_tag["Program:Packing.Boxes[2]"] == {
            "name": "packing_boxes_2", "tag": "Program:Packing.Boxes[2]", "type": "int"
        }  # fmt: skip
        profile, problems = load_profile(out)
        assert problems == [], problems
        assert isinstance(profile, EnipProfile)

        config = _config(tmp_path, server.port, "logix-browsed")
        done = _agent("validate", str(config))
        assert done.returncode == 0, done.stdout + done.stderr
        done = _agent("probe", str(config), "--device", "logix-01", "--json")
        assert done.returncode == 0, done.stdout + done.stderr
        rows = {r["raw"]: r for r in json.loads(done.stdout)}
    assert set(rows) == set(by_tag)
    assert {r["quality"] for r in rows.values()} == {"good"}
    assert (rows["Speed"]["value"], rows["Running"]["value"]) == (42.5, True)
    assert (rows["Zones[2]"]["value"], rows["Label"]["value"]) == (7, "lot-7")
    assert rows["Program:MainProgram.State"]["value"] == 3


def test_long_arrays_are_cut_at_max_elements_and_say_so(tmp_path: Path) -> None:
    with enip_server({"Weights": "REAL[40]", "Speed": "REAL"}) as server:
        config = _config(tmp_path, server.port, "rockwell-compactlogix-line")
        out = tmp_path / "cut.yaml"
        done = _agent("browse", str(config), "--device", "logix-01", "--profile-out", str(out),
                      "--max-elements", "3")  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "left out: Weights[3..39]: past --max-elements 3" in done.stdout
    text = out.read_text()
    assert "# left out: Weights[3..39]" in text
    assert [t["tag"] for t in yaml.safe_load(text)["tags"]] == [
        "Weights[0]", "Weights[1]", "Weights[2]", "Speed"
    ]  # fmt: skip


def test_a_controller_without_a_tag_list_and_one_that_is_off_name_the_next_step(
    tmp_path: Path,
) -> None:
    with enip_server({"Speed": "REAL"}, tag_list=False) as server:
        config = _config(tmp_path, server.port, "rockwell-compactlogix-line")
        done = _agent("browse", str(config), "--device", "logix-01")
    assert done.returncode == 1
    assert "does not list its tags" in done.stderr
    assert "next: " in done.stderr
    assert "write the profile from the PLC project" in done.stderr

    config = _config(tmp_path, free_port(), "rockwell-compactlogix-line")
    done = _agent("browse", str(config), "--device", "logix-01")
    assert done.returncode == 1
    assert "error: logix-01: 127.0.0.1:" in done.stderr
    assert "next: check the address, port and slot" in done.stderr


async def test_the_simulators_logix_conveyor_answers_the_tag_list() -> None:
    device = LogixDevice("logix-conveyor-01", LogixConveyor.tags, FaultBook())
    await device.start("127.0.0.1", 0)
    try:
        endpoint = EnipEndpoint("127.0.0.1", device.port)
        listing = await asyncio.to_thread(list_tags, endpoint, "logix-conveyor-01")
    finally:
        await device.stop()
    shown = {t.name: t.shown_type for t in listing.tags}
    # The Conveyor UDT's members are flat tags in cpppo, with no template to list them by.
    assert shown == {
        "Counters": "DINT[2]", "Model": "STRING", "Program:MainProgram.BeltSpeed": "REAL",
        "Program:MainProgram.SpeedSetpoint": "REAL", "Program:MainProgram.LastItem": "STRING",
    }  # fmt: skip
    assert listing.programs == ["Program:MainProgram"]


def test_udt_members_go_by_path_and_what_has_no_profile_type_is_left_out_with_why() -> None:
    # As list_tags builds them from pylogix's templates on a controller that serves them.
    motor = (ListedTag("Current", "REAL"), ListedTag("Temp", "INT"))
    filler = ListedTag("Filler", "Filler_t", struct=True, members=(
        ListedTag("Running", "BOOL"), ListedTag("Motor", "Motor_t", struct=True, members=motor),
        ListedTag("Counts", "DINT", dimensions=1, length=2),
    ))  # fmt: skip
    lines = ListedTag("Lines", "Motor_t", dimensions=1, length=2, struct=True, members=motor)
    batch = ListedTag("BatchID", "STRING", struct=True, members=(ListedTag("LEN", "DINT"),))
    grid = ListedTag("Grid", "REAL", dimensions=2, length=3)
    timer = ListedTag("Delay", "TIMER", struct=True)
    listing = TagListing([filler, lines, batch, grid, timer])
    skeleton, skipped = profile_skeleton("x", EnipEndpoint("10.0.4.30"), listing, 16)
    assert [(t["tag"], t["type"]) for t in skeleton["tags"]] == [
        ("Filler.Running", "bool"), ("Filler.Motor.Current", "real"), ("Filler.Motor.Temp", "int"),
        ("Filler.Counts[0]", "dint"), ("Filler.Counts[1]", "dint"),
        ("Lines[0].Current", "real"), ("Lines[0].Temp", "int"),
        ("Lines[1].Current", "real"), ("Lines[1].Temp", "int"),
        ("BatchID", "string"),
    ]  # fmt: skip
    assert skipped == [
        "Grid REAL[3,…]: a 2-dimensional array; add elements as Grid[i,j]",
        "Delay: a UDT (TIMER) whose members were not listed; add them by path (Delay.Member)",
    ]
    assert skeleton["tags"][1]["name"] == "filler_motor_current"


def test_the_servers_tag_list_reply_has_the_attributes_asked_in_the_order_asked() -> None:
    listed = symbols([("Speed", 0xCA, 0), ("Program:Main.Zones", 0xC4, 4)], None)
    assert listed == [(1, "Speed", 0xCA, 0), (2, "Program:Main", PROGRAM_SYMBOL_TYPE, 0)]
    status, data = list_reply(listed, 1, (1, 2, 8))
    assert status == 0
    assert data[:25] == struct.pack("<IH5sHIII", 1, 5, b"Speed", 0xCA, 0, 0, 0)
    # pycomm3's set: name, type, address, object address, software control, dims, access.
    status, data = list_reply(listed, 2, (1, 2, 3, 5, 6, 8, 10))
    assert (status, len(data)) == (0, 4 + 2 + len("Program:Main") + 2 + 12 + 12 + 1)
    assert list_reply(listed, 1, (1, 99)) == (0x14, b"")
    (zones,) = symbols([("Program:Main.Zones", 0xC4, 4)], "Program:Main")
    assert zones == (1, "Zones", 0x20C4, 4)
