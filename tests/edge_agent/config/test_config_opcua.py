"""OPC-UA profiles and devices share the loader; the tag variant is chosen by `protocol`."""

from __future__ import annotations

import pytest
from _config_helpers import Write

from edge_agent.config import OpcUaProfile, load_agent_config
from edge_agent.errors import ConfigError

PROFILE = """\
profile: cnc-mill
vendor: Example
model: Mill 5
protocol: opcua
source: controller information model
defaults: {mode: subscribe, sampling_ms: 500}
tags:
{tags}
"""

CONFIG = """\
agent: {id: line3-pc, site: plant-a, line: line-3}
mqtt: {url: "mqtt://127.0.0.1:1883"}
devices:
  - machine: mill-01
    profile: cnc-mill
    opcua: {url: "opc.tcp://127.0.0.1:4840", security: None}
"""


def test_opcua_profile_and_device_load(write: Write) -> None:
    write(
        "cnc-mill.yaml",
        PROFILE.replace(
            "{tags}",
            """\
  - name: spindle_speed
    node: "ns=2;s=Spindle.Speed"
    mode: subscribe
    sampling_ms: 100
    deadband: {kind: absolute, value: 1.0}
    unit: rpm
  - {name: axis_x, browse_path: "/Objects/2:Machine/2:Axis/2:X", mode: poll}""",
        ),
    )
    loaded = load_agent_config(write("agent.yaml", CONFIG), env={})
    device = loaded.devices[0]
    assert device.device.protocol == "opcua"
    assert device.device.opcua is not None
    assert device.device.opcua.url == "opc.tcp://127.0.0.1:4840"
    profile = device.profile
    assert isinstance(profile, OpcUaProfile)
    speed, axis = profile.tags
    assert speed.deadband is not None
    assert (speed.deadband.kind, speed.deadband.value) == ("absolute", 1.0)
    assert axis.node is None
    assert axis.browse_path == "/Objects/2:Machine/2:Axis/2:X"


def test_opcua_tag_problems_are_located(write: Write) -> None:
    write(
        "cnc-mill.yaml",
        PROFILE.replace(
            "{tags}",
            """\
  - {name: a, node: "ns=2;s=A", browse_path: "/Objects/2:A"}
  - {name: b, table: holding}
  - {name: c, node: "ns=2;s=C", deadband: {kind: relative, value: 1}}""",
        ),
    )
    config = CONFIG.replace('"opc.tcp://127.0.0.1:4840"', '"http://127.0.0.1:4840"')
    with pytest.raises(ConfigError) as info:
        load_agent_config(write("agent.yaml", config), env={})
    found = {(p.path, p.hint) for p in info.value.problems}
    prefix = "devices[0].profile cnc-mill: "
    paths = {path for path, _ in found}
    assert paths == {
        "devices[0].opcua.url",
        prefix + "tags[0].node",
        prefix + "tags[1].table",  # unknown key: the tag's own checks wait for a clean tag
        prefix + "tags[2].deadband.kind",
    }
    hints = dict(found)
    assert hints[prefix + "tags[2].deadband.kind"] == "use one of absolute, percent"
    assert "browse_path" in hints[prefix + "tags[0].node"]
    assert hints["devices[0].opcua.url"] == 'write "opc.tcp://HOST:4840"'


def test_opcua_write_bounds_need_a_writable_tag(write: Write) -> None:
    write(
        "cnc-mill.yaml",
        PROFILE.replace(
            "{tags}",
            """\
  - {name: a, node: "ns=2;s=A", max: 10}
  - {name: b, node: "ns=2;s=B", writable: true, min: 5, max: 1}
  - {name: c, node: "ns=2;s=C", writable: true, min: 0, max: 100}""",
        ),
    )
    with pytest.raises(ConfigError) as info:
        load_agent_config(write("agent.yaml", CONFIG), env={})
    prefix = "devices[0].profile cnc-mill: "
    found = {p.path: p for p in info.value.problems}
    assert set(found) == {prefix + "tags[0].max", prefix + "tags[1].max"}
    assert "add writable: true" in found[prefix + "tags[0].max"].hint
    assert "max 1 is below min 5" in found[prefix + "tags[1].max"].message
