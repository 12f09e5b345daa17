"""A profile with `addressing: offset` reads a SunSpec map at 40000+ from a real pymodbus server."""

from __future__ import annotations

from pathlib import Path

from modbus_harness import sim_device, tcp_server

from edge_agent.config import ModbusProfile, load_agent_config, modbus_points
from edge_agent.drivers.modbus.driver import ModbusDriver
from edge_agent.drivers.modbus.endpoint import ModbusEndpoint, TcpLink

PROFILE = """\
profile: sunspec-inverter
vendor: Test
model: SunSpec inverter
protocol: modbus
source: SunSpec Information Model Specification (base address 40000, common model 1)
addressing: offset
tags:
  - {name: sunspec_id, table: holding, address: 40000, type: uint32}
  - {name: common_id, table: holding, address: 40002, type: uint16}
  - {name: ac_power, table: holding, address: 40083, type: int16}
  # The same register as the manual's 1-based reference, for one tag only.
  - {name: ac_power_ref, table: holding, address: 440084, type: int16, addressing: reference}
"""

CONFIG = """\
agent: {{id: line3-pc, site: plant-a, line: line-3}}
mqtt: {{url: "mqtt://127.0.0.1:1883"}}
devices:
  - machine: inverter-1
    profile: ./sunspec-inverter.yaml
    modbus: {{host: 127.0.0.1, port: {port}, unit: 1, timeout_ms: 2000}}
"""


async def test_sunspec_registers_above_40000_are_read_where_the_profile_says(
    tmp_path: Path,
) -> None:
    # Register 40000+n holds 1000+n, except the ones the tags check: "SunS", model 1, -1234 W.
    regs = {a: 1000 + a - 40000 for a in range(40000, 40090)}
    regs |= {40000: 0x5375, 40001: 0x6E53, 40002: 1, 40083: -1234 & 0xFFFF}
    # Low registers hold something else, so reading 0-based offsets by mistake would show.
    regs |= dict.fromkeys(range(90), 7)
    (tmp_path / "sunspec-inverter.yaml").write_text(PROFILE)
    async with tcp_server([sim_device(1, holding=regs)]) as port:
        config = tmp_path / "agent.yaml"
        config.write_text(CONFIG.format(port=port))
        loaded = load_agent_config(config, env={})
        profile = loaded.devices[0].profile
        assert isinstance(profile, ModbusProfile)
        endpoint = ModbusEndpoint(TcpLink("127.0.0.1", port), unit=1, timeout_ms=2000)
        async with ModbusDriver("inverter-1", endpoint, modbus_points(profile)) as driver:
            samples = {s.tag: s for s in await driver.read()}
            requested = {(r.table, r.address) for r in driver.requests}
    assert {tag: s.quality for tag, s in samples.items()} == dict.fromkeys(samples, "good")
    assert samples["sunspec_id"].value == 0x53756E53  # "SunS"
    assert samples["common_id"].value == 1
    assert samples["ac_power"].value == -1234
    assert samples["ac_power_ref"].value == -1234
    assert all(address >= 40000 for _, address in requested), requested
