"""The loader: every problem at once, profile search order, env overrides, real profiles."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from _config_helpers import Write, config_text, profile_text

from edge_agent.config import (
    PROFILE_PATH_ENV,
    builtin_profile_dirs,
    load_agent_config,
    load_profile,
    modbus_points,
)
from edge_agent.config.modbus_profile import ModbusProfile
from edge_agent.drivers.modbus.points import ModbusPoint
from edge_agent.errors import ConfigError, ConfigProblem, MillstreamAgentError

TAG = "  - {name: t, table: input, address: 0, type: float32}"
REPO = Path(__file__).resolve().parents[3]


def load_problems(config: Path, env: dict[str, str] | None = None) -> list[ConfigProblem]:
    with pytest.raises(ConfigError) as info:
        load_agent_config(config, env=env or {})
    return list(info.value.problems)


def test_valid_config_loads_with_profile_and_defaults(write: Write) -> None:
    write("test-device.yaml", profile_text(TAG))
    loaded = load_agent_config(write("agent.yaml", config_text()), env={})
    assert loaded.config.agent.id == "line3-pc"
    assert loaded.config.buffer.max_bytes == 1024**3
    assert loaded.config.buffer.max_age == timedelta(days=7)
    # Relative buffer paths are relative to the config file, not to the working directory.
    assert loaded.config.buffer.path == str(loaded.path.parent.resolve() / "buffer.db")
    assert loaded.config.state_dir == str(loaded.path.parent.resolve() / "state")
    (device,) = loaded.devices
    assert device.device.machine == "meter-01"
    assert device.device.modbus is not None
    assert device.device.modbus.transport == "tcp"
    assert device.profile.profile == "test-device"
    assert loaded.tag_count == 1


def test_every_problem_of_config_and_profile_reported_at_once(write: Write) -> None:
    write(
        "test-device.yaml",
        profile_text(
            """\
              - {name: a, table: holding, address: 40001, type: float32}
              - {name: a, table: holding, address: 2, type: string}
            """
        ),
    )
    config = write(
        "agent.yaml",
        """\
        agent: {id: line3-pc, site: receipts, line: line-3}
        mqtt: {url: "mqtt://127.0.0.1:1883", hots: x}
        devices:
          - machine: meter-01
            profile: test-device
            modbus: {host: 127.0.0.1, serial: /dev/ttyUSB0}
          - machine: meter-01
            profile: no-such-profile
            modbus: {host: 127.0.0.1}
        """,
    )
    problems = load_problems(config)
    located = {(Path(p.file).name, p.path) for p in problems}
    assert located == {
        ("agent.yaml", "agent.site"),
        ("agent.yaml", "mqtt.hots"),
        ("agent.yaml", "devices[0].modbus.serial"),
        ("agent.yaml", "devices[1].machine"),
        ("agent.yaml", "devices[1].profile"),
        ("test-device.yaml", "devices[0].profile test-device: tags[0].address"),
        ("test-device.yaml", "devices[0].profile test-device: tags[1].length"),
        ("test-device.yaml", "devices[0].profile test-device: tags[1].name"),
    }
    hints = {p.path: p.hint for p in problems}
    assert "pick another site name" in hints["agent.site"]
    assert hints["mqtt.hots"].startswith("valid keys here: ")
    assert "url" in hints["mqtt.hots"]
    assert "keep one" in hints["devices[0].modbus.serial"]
    assert "unique" in hints["devices[1].machine"]
    assert "test-device" in hints["devices[1].profile"]
    # The list reads top-down: config file first, by line, then the profile.
    lines = [p.line for p in problems if Path(p.file).name == "agent.yaml"]
    assert lines == sorted(lines)
    assert isinstance(ConfigError(problems), MillstreamAgentError)


def test_unknown_profile_lists_available_ones(write: Write) -> None:
    problems = load_problems(write("agent.yaml", config_text("eastron-sdm63")))
    (problem,) = problems
    assert problem.path == "devices[0].profile"
    assert problem.message == "no profile 'eastron-sdm63' found"
    assert problem.hint.startswith("did you mean eastron-sdm630? available profiles: ")
    assert "eastron-sdm120" in problem.hint
    assert problem.line == 6


def test_unknown_key_suggests_closest_valid_key(write: Write) -> None:
    write("test-device.yaml", profile_text(TAG))
    text = config_text().replace("timeout_ms: 1000", "timeout: 1000")
    (problem,) = load_problems(write("agent.yaml", text))
    assert problem.path == "devices[0].modbus.timeout"
    assert problem.message == "unknown key 'timeout'"
    assert problem.hint == "did you mean timeout_ms?"


def test_yaml_syntax_error_has_line_and_column(write: Write) -> None:
    config = write("agent.yaml", "agent: {id: a, site: b, line: c}\nmqtt:\n  url: [unclosed\n")
    (problem,) = load_problems(config)
    assert Path(problem.file).name == "agent.yaml"
    assert "YAML syntax error at line 4, column 1" in problem.message
    assert "indentation" in problem.hint


def test_yaml_syntax_error_in_profile_is_located_in_the_profile(write: Write) -> None:
    write("test-device.yaml", "profile: test-device\ntags:\n  - {name: t, table: input\n")
    (problem,) = load_problems(write("agent.yaml", config_text()))
    assert Path(problem.file).name == "test-device.yaml"
    assert problem.path == "devices[0].profile test-device"
    assert "YAML syntax error at line" in problem.message


def test_duplicate_yaml_key_is_reported(write: Write) -> None:
    write("test-device.yaml", profile_text(TAG))
    text = config_text().replace("mqtt:", "mqtt: {url: 'mqtt://a'}\nmqtt:", 1)
    problems = load_problems(write("agent.yaml", text))
    assert [(p.path, p.line) for p in problems] == [("mqtt", 3)]
    assert "appears twice (also set on line 2)" in problems[0].message


def test_duplicate_machine_names(write: Write) -> None:
    write("test-device.yaml", profile_text(TAG))
    text = config_text() + (
        "  - machine: meter-01\n    profile: test-device\n    modbus: {host: 10.0.0.2}\n"
    )
    (problem,) = load_problems(write("agent.yaml", text))
    assert problem.path == "devices[1].machine"
    assert "duplicate machine name 'meter-01' (first used at devices[0])" in problem.message


def test_serial_device_and_serial_only_keys(write: Write) -> None:
    write("test-device.yaml", profile_text(TAG))
    text = config_text().replace(
        "{host: 127.0.0.1, port: 502, unit: 1, timeout_ms: 1000}",
        "{serial: /dev/ttyUSB0, baudrate: 19200, parity: even, stopbits: 2, unit: 3}",
    )
    loaded = load_agent_config(write("agent.yaml", text), env={})
    modbus = loaded.devices[0].device.modbus
    assert modbus is not None
    assert (modbus.transport, modbus.serial, modbus.baudrate, modbus.parity) == (
        "serial",
        "/dev/ttyUSB0",
        19200,
        "E",
    )
    text = config_text().replace("port: 502", "port: 502, baudrate: 9600")
    (problem,) = load_problems(write("agent.yaml", text))
    assert (problem.path, problem.hint) == ("devices[0].modbus.baudrate", "remove baudrate")


def test_device_without_connection_section(write: Write) -> None:
    write("test-device.yaml", profile_text(TAG))
    text = config_text().replace(
        "    modbus: {host: 127.0.0.1, port: 502, unit: 1, timeout_ms: 1000}\n", ""
    )
    (problem,) = load_problems(write("agent.yaml", text))
    assert problem.path == "devices[0]"
    assert "exactly one of modbus, opcua, s7 and enip" in problem.message


def test_protocol_mismatch_between_device_and_profile(write: Write) -> None:
    write(
        "test-device.yaml",
        "profile: test-device\nvendor: V\nmodel: M\nprotocol: opcua\nsource: s\n"
        "tags:\n  - {name: speed, node: 'ns=2;s=Speed'}\n",
    )
    (problem,) = load_problems(write("agent.yaml", config_text()))
    assert problem.path == "devices[0].modbus"
    assert "speaks opcua" in problem.message


def test_missing_sections_get_a_template_hint(write: Write) -> None:
    problems = load_problems(write("agent.yaml", "agent: {id: a, site: b, line: c}\n"))
    hints = {p.path: p.hint for p in problems}
    assert hints["mqtt"] == 'add mqtt: {url: "mqtt://127.0.0.1:1883"}'
    assert hints["devices"].startswith("add devices:")


def test_config_file_not_found(tmp_path: Path) -> None:
    (problem,) = load_problems(tmp_path / "nope.yaml")
    assert problem.message == "file not found"


class TestProfileSearchOrder:
    def test_path_relative_to_config_file(self, write: Write) -> None:
        write("profiles/my-meter.yaml", profile_text(TAG, name="my-meter"))
        config = write("site/agent.yaml", config_text("../profiles/my-meter.yaml"))
        loaded = load_agent_config(config, env={})
        assert (
            loaded.devices[0].profile_file.resolve()
            == config.parent.parent.joinpath("profiles", "my-meter.yaml").resolve()
        )

    def test_config_folder_wins_over_shipped_profiles(self, write: Write) -> None:
        write("eastron-sdm630.yaml", profile_text(TAG, name="eastron-sdm630"))
        loaded = load_agent_config(write("agent.yaml", config_text("eastron-sdm630")), env={})
        assert loaded.devices[0].profile.source == "test fixture"

    def test_shipped_profiles_by_name(self, write: Write) -> None:
        loaded = load_agent_config(write("agent.yaml", config_text("eastron-sdm630")), env={})
        assert loaded.devices[0].profile_file.parent in builtin_profile_dirs()

    def test_profile_path_env_is_searched_last(self, write: Write, tmp_path: Path) -> None:
        extra = tmp_path / "extra"
        write("extra/custom-plc.yaml", profile_text(TAG, name="custom-plc"))
        config = write("cfg/agent.yaml", config_text("custom-plc"))
        loaded = load_agent_config(config, env={PROFILE_PATH_ENV: str(extra)})
        assert loaded.devices[0].profile.profile == "custom-plc"
        (problem,) = load_problems(config)
        assert "MILLSTREAM_PROFILE_PATH" in problem.hint


class TestEnvOverrides:
    def test_override_scalars_in_sections_and_devices(self, write: Write) -> None:
        write("test-device.yaml", profile_text(TAG))
        env = {
            "MILLSTREAM_AGENT__ID": "other-pc",
            "MILLSTREAM_MQTT__URL": "mqtts://broker:8883",
            "MILLSTREAM_BUFFER__MAX_BYTES": "500MB",
            "MILLSTREAM_BUFFER__MAX_AGE": "12h",
            "MILLSTREAM_DEVICES__0__MODBUS__HOST": "10.0.0.7",
            "MILLSTREAM_DEVICES__0__MODBUS__PORT": "5020",
            "MILLSTREAM_PROFILE_PATH": "",  # not an override
            "MILLSTREAM_HUB__DATABASE": "ignored: not a section of this file",
            "PATH": "/usr/bin",
        }
        loaded = load_agent_config(write("agent.yaml", config_text()), env=env)
        config = loaded.config
        assert config.agent.id == "other-pc"
        assert config.mqtt.url == "mqtts://broker:8883"
        assert config.buffer.max_bytes == 500_000_000
        assert config.buffer.max_age == timedelta(hours=12)
        modbus = config.devices[0].modbus
        assert modbus is not None
        assert (modbus.host, modbus.port) == ("10.0.0.7", 5020)

    def test_override_can_add_a_missing_section_key(self, write: Write) -> None:
        write("test-device.yaml", profile_text(TAG))
        text = config_text().replace('mqtt: {url: "mqtt://127.0.0.1:1883"}\n', "")
        env = {"MILLSTREAM_MQTT__URL": "mqtt://10.1.1.1:1883"}
        loaded = load_agent_config(write("agent.yaml", text), env=env)
        assert loaded.config.mqtt.url == "mqtt://10.1.1.1:1883"

    def test_bad_override_names_the_variable(self, write: Write) -> None:
        write("test-device.yaml", profile_text(TAG))
        env = {
            "MILLSTREAM_AGENT__SITE": "agents",
            "MILLSTREAM_MQTT__URLL": "mqtt://x",
            "MILLSTREAM_DEVICES__3__MODBUS__HOST": "10.0.0.1",
        }
        problems = load_problems(write("agent.yaml", config_text()), env)
        by_file = {p.file: p for p in problems}
        assert set(by_file) == {
            "environment MILLSTREAM_AGENT__SITE",
            "environment MILLSTREAM_MQTT__URLL",
            "environment MILLSTREAM_DEVICES__3__MODBUS__HOST",
        }
        assert by_file["environment MILLSTREAM_MQTT__URLL"].hint == "did you mean url?"
        assert by_file["environment MILLSTREAM_AGENT__SITE"].path == "agent.site"
        assert (
            "there is no [3]" in by_file["environment MILLSTREAM_DEVICES__3__MODBUS__HOST"].message
        )


class TestRealProfiles:
    @pytest.mark.parametrize("name", ["eastron-sdm630", "eastron-sdm120"])
    def test_shipped_profile_loads_and_cites_its_source(self, name: str) -> None:
        profile, problems = load_profile(REPO / "device_profiles" / f"{name}.yaml")
        assert problems == []
        assert isinstance(profile, ModbusProfile)
        assert profile.vendor == "Eastron"
        assert "Modbus Protocol" in profile.source
        # Vendor table: every measurement is an input-register float32, high word first.
        assert {(t.table, t.type) for t in profile.tags} == {("input", "float32")}
        assert profile.defaults.order == "ABCD"

    def test_every_shipped_profile_is_valid(self) -> None:
        for path in sorted((REPO / "device_profiles").glob("*.yaml")):
            _, problems = load_profile(path)
            assert problems == [], path.name

    def test_sdm630_addresses_match_vendor_table(self) -> None:
        profile, _ = load_profile(REPO / "device_profiles" / "eastron-sdm630.yaml")
        assert isinstance(profile, ModbusProfile)
        addresses = {t.name: t.address for t in profile.tags}
        # 30001 -> 0x0000, 30071 -> 0x0046, 30073 -> 0x0048, 30343 -> 0x0156.
        assert addresses["voltage_l1"] == 0
        assert addresses["frequency"] == 0x46
        assert addresses["import_energy"] == 0x48
        assert addresses["total_energy"] == 0x156

    def test_example_config_validates(self) -> None:
        loaded = load_agent_config(REPO / "examples" / "agent.yaml", env={})
        assert [d.device.machine for d in loaded.devices] == ["meter-01", "meter-02"]
        assert set(loaded.profiles) == {"eastron-sdm630", "eastron-sdm120"}


def test_points_fill_in_profile_defaults(write: Write) -> None:
    write(
        "test-device.yaml",
        profile_text(
            """\
              - {name: v, table: input, address: 0, type: float32, unit: V, deadband: 0.5}
              - {name: e, table: input, address: 2, type: int32, order: CDAB, poll_ms: 5000}
              - {name: s, table: holding, address: 10, type: string, length: 8}
              - {name: run, table: holding, address: 20, type: bool, bit: 3}
              - {name: alarm, table: coil, address: 5, type: bool}
              - {name: t, table: holding, address: 30, type: int16, scale: 0.1, offset: -40}
            """
        ),
    )
    loaded = load_agent_config(write("agent.yaml", config_text()), env={})
    profile = loaded.devices[0].profile
    assert isinstance(profile, ModbusProfile)
    points = modbus_points(profile)
    assert points == [
        ModbusPoint("v", "input", 0, "float32", None, "ABCD", None, 1.0, 0.0, 0.5, 1000, "V"),
        ModbusPoint("e", "input", 2, "int32", None, "CDAB", None, 1.0, 0.0, None, 5000, None),
        ModbusPoint("s", "holding", 10, "string", 8, "ABCD", None, 1.0, 0.0, None, 1000, None),
        ModbusPoint("run", "holding", 20, "bool", None, "ABCD", 3, 1.0, 0.0, None, 1000, None),
        ModbusPoint("alarm", "coil", 5, "bool", None, "ABCD", None, 1.0, 0.0, None, 1000, None),
        ModbusPoint("t", "holding", 30, "int16", None, "ABCD", None, 0.1, -40.0, None, 1000, None),
    ]
