"""The demo's generated configs are valid for the real loaders, and its secrets persist."""

from __future__ import annotations

import stat
from pathlib import Path

from edge_agent.config import load_agent_config
from edge_agent.simulators import machine_names
from hub.config import load_config
from hub.demo.layout import DemoLayout, agent_config, ensure_secret, hub_config
from hub.ingest.mqtt import subscriptions


def endpoints(machines: int) -> list[dict[str, object]]:
    out: list[dict[str, object]] = []
    for k, (name, cls) in enumerate(machine_names(machines)):
        if cls.protocol == "modbus":
            out.append(
                {
                    "machine": name,
                    "protocol": "modbus",
                    "host": "127.0.0.1",
                    "port": 6000 + k,
                    "unit": 1,
                }
            )
        else:
            out.append(
                {
                    "machine": name,
                    "protocol": "opcua",
                    "url": "opc.tcp://127.0.0.1:4841/millstream/sim",
                }
            )
    return out


def test_hub_config_uses_mqtt_311_sqlite_and_the_port(tmp_path: Path) -> None:
    layout = DemoLayout(tmp_path)
    layout.prepare()
    layout.hub_config.write_text(hub_config(layout, 41883, 8123))
    cfg = load_config(layout.hub_config, environ={})
    assert cfg.mqtt.protocol == "mqttv311"
    assert cfg.mqtt.port == 41883
    assert cfg.storage == f"sqlite:///{tmp_path / 'hub.db'}"
    assert (cfg.http.host, cfg.http.port) == ("127.0.0.1", 8123)
    # Alerts on the demo's SQLite hub: the profiles' limits and one z-score rule, nobody told.
    assert cfg.alerts is not None
    assert [(r.name, r.kind, r.notify) for r in cfg.alerts.rules] == [("odd", "zscore", ())]
    assert cfg.alerts.limits.enabled


def test_agent_config_loads_with_every_device_and_extra_cnc_profiles(tmp_path: Path) -> None:
    layout = DemoLayout(tmp_path)
    layout.prepare()
    text, extra = agent_config(endpoints(10), 41883, 10)
    assert set(extra) == {"sim-cnc-mill-02.yaml"}  # the second CNC has its own browse paths
    for name, body in extra.items():
        (layout.agent_dir / name).write_text(body)
    layout.agent_config.write_text(text)
    loaded = load_agent_config(layout.agent_config, env={})
    machines = [d.machine for d in loaded.config.devices]
    assert machines == [name for name, _ in machine_names(10)]
    assert loaded.config.mqtt.url == "mqtt://127.0.0.1:41883"


def test_secrets_are_private_and_kept(tmp_path: Path) -> None:
    first, created = ensure_secret(tmp_path / "s", 12)
    again, created_again = ensure_secret(tmp_path / "s", 12)
    assert (created, created_again) == (True, False)
    assert first == again
    assert len(first) >= 16
    assert stat.S_IMODE((tmp_path / "s").stat().st_mode) == 0o600


def test_mqtt_311_subscriptions_are_plain() -> None:
    topics = [t for t, _ in subscriptions("hub", shared=False)]
    assert topics == [
        "ms/v1/+/+/+/telemetry",
        "ms/v1/+/+/+/events",
        "ms/v1/+/+/+/status",
        "ms/v1/+/+/+/meta",
        "ms/v1/agents/+/status",
        "ms/v1/agents/+/cmd/res",
    ]
    assert all(opts.QoS == 1 for _, opts in subscriptions("hub", shared=False))
    shared = [t for t, _ in subscriptions("hub")]
    assert shared[0] == "$share/hub/ms/v1/+/+/+/telemetry"
    assert "$share/hub/ms/v1/agents/+/cmd/res" in shared
