"""Hub configuration: YAML + MILLSTREAM_ overrides, every problem reported with file, path, hint."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from hub.config import HubConfig, load_config
from hub.errors import ConfigError

HUB = str(Path(sys.executable).with_name("millstream-hub"))
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "hub.yaml"


def test_defaults_are_the_documented_contract() -> None:
    cfg = load_config(None, {})
    assert cfg.mqtt.url == "mqtt://127.0.0.1:1883"
    assert cfg.mqtt.share_group == "hub"
    assert (cfg.http.host, cfg.http.port) == ("127.0.0.1", 8000)
    assert cfg.flush_ms == 50


def test_example_file_loads() -> None:
    cfg = load_config(EXAMPLE, {})
    assert cfg.storage.startswith("postgresql://")


def test_env_overrides_nested_keys_and_parses_scalars(tmp_path: Path) -> None:
    path = tmp_path / "hub.yaml"
    path.write_text("storage: sqlite:///a.db\nmqtt: {url: 'mqtt://broker:1883'}\n")
    cfg = load_config(
        path,
        {
            "MILLSTREAM_STORAGE": "postgresql://u@db/ms",
            "MILLSTREAM_MQTT__URL": "mqtts://broker:8883",
            "MILLSTREAM_FLUSH_MS": "100",
            "MILLSTREAM_HTTP__PORT": "9000",
            "UNRELATED": "x",
        },
    )
    assert cfg.storage == "postgresql://u@db/ms"
    assert (cfg.mqtt.host, cfg.mqtt.port, cfg.mqtt.use_tls) == ("broker", 8883, True)
    assert (cfg.flush_ms, cfg.http.port) == (100, 9000)


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    path = tmp_path / "hub.yaml"
    path.write_text("mqtt: {url: 'http://x', sharegroup: a}\nstorage: mysql://x\nflush_ms: 0\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path, {})
    where = {p.path for p in caught.value.problems}
    assert where == {"mqtt.url", "mqtt.sharegroup", "storage", "flush_ms"}
    text = str(caught.value)
    assert f"{path}: storage:" in text
    assert "sqlite:///" in text  # the hint shows what to write


def test_config_is_frozen() -> None:
    cfg = HubConfig()
    with pytest.raises(ValueError, match="frozen"):
        cfg.flush_ms = 1  # type: ignore[misc]


def test_password_from_environment_variable(tmp_path: Path) -> None:
    path = tmp_path / "hub.yaml"
    path.write_text("mqtt: {username: hub, password_env: HUB_PW}\n")
    cfg = load_config(path, {})
    assert cfg.mqtt.username == "hub"
    assert cfg.mqtt.password_env == "HUB_PW"


def test_password_variable_may_share_the_override_prefix(tmp_path: Path) -> None:
    path = tmp_path / "hub.yaml"
    path.write_text("mqtt: {username: hub, password_env: MILLSTREAM_MQTT_PASSWORD}\n")
    env = {"MILLSTREAM_MQTT_PASSWORD": "s3cret", "MILLSTREAM_FLUSH_MS": "75"}
    cfg = load_config(path, env)
    assert cfg.flush_ms == 75
    assert cfg.mqtt.password_env == "MILLSTREAM_MQTT_PASSWORD"


def test_cli_prints_problems_and_exits_1(tmp_path: Path) -> None:
    path = tmp_path / "hub.yaml"
    path.write_text("storage: mysql://x\nbogus: 1\n")
    done = subprocess.run(
        [HUB, "migrate", "--config", str(path)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 1
    assert f"{path}: storage:" in done.stderr
    assert f"{path}: bogus:" in done.stderr


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "nope.yaml", {})


def test_sparkplug_naming_templates_are_checked(tmp_path: Path) -> None:
    path = tmp_path / "hub.yaml"
    path.write_text(
        "sparkplug: {host_id: 'bad id', site: '{plant}', line: '{node', machine: '{device}'}\n"
    )
    with pytest.raises(ConfigError) as caught:
        load_config(path, {})
    where = {p.path: str(p) for p in caught.value.problems}
    assert set(where) == {"sparkplug.host_id", "sparkplug.site", "sparkplug.line"}
    assert "use {group}, {node} or {device}" in where["sparkplug.site"]
    ok = tmp_path / "ok.yaml"
    ok.write_text("sparkplug: {site: plant-3, line: '{group}', machine: '{node}-{device}'}\n")
    cfg = load_config(ok, {})
    assert cfg.sparkplug is not None
    assert cfg.sparkplug.host_id == "millstream"
