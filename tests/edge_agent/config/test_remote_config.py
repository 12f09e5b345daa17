"""Configurations from the hub on the agent's side: kept as versions, loaded like the local
file (with its password), and never running over a local file edited since."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

import wire
from edge_agent.config import load_agent_config
from edge_agent.config.remote import ActiveConfig, RemoteConfigs, Trial, local_digest, select_config
from edge_agent.errors import ConfigError

PROFILE = """profile: test-meter
vendor: Millstream tests
model: Meter
protocol: modbus
source: written for this test
tags:
  - {name: power, table: holding, address: 0, type: uint16}
"""


def _agent_yaml(port: int, *, agent_id: str = "pc-1", extra: str = "") -> str:
    return (
        f"agent: {{id: {agent_id}, site: plant, line: l1}}\n"
        "mqtt: {url: 'mqtt://127.0.0.1:1883', password_file: secret.txt" + extra + "}\n"
        "devices:\n"
        "  - {machine: meter-01, profile: test-meter,"
        f" modbus: {{host: 127.0.0.1, port: {port}}}}}\n"
    )


@pytest.fixture
def local(tmp_path: Path) -> Path:
    folder = tmp_path / "etc"
    folder.mkdir()
    (folder / "test-meter.yaml").write_text(PROFILE)
    (folder / "agent.yaml").write_text(_agent_yaml(502))
    return folder / "agent.yaml"


def _bundle(version: int, text: str, **files: str) -> wire.ConfigBundle:
    return wire.ConfigBundle(version=version, files={"agent.yaml": text, **files})


def test_a_received_version_runs_beside_the_local_file(local: Path) -> None:
    mine = load_agent_config(local, {})
    store = RemoteConfigs(Path(mine.config.state_dir))
    # No password file of its own: the local one is used; the profile comes from the local
    # folder when the hub did not send it.
    store.stage(_bundle(2, _agent_yaml(1502).replace(", password_file: secret.txt", "")))
    loaded = store.load(2, mine, {})
    assert loaded.config.mqtt.password_file == "secret.txt"
    assert loaded.config.devices[0].modbus is not None
    assert loaded.config.devices[0].modbus.port == 1502
    assert (loaded.config.buffer.path, loaded.config.state_dir) == (
        mine.config.buffer.path, mine.config.state_dir,
    )  # fmt: skip
    assert loaded.path == local

    store.save(ActiveConfig(2, local_digest(local)))
    running, active = select_config(mine, Path(mine.config.state_dir), {})
    assert active is not None
    assert running.config.devices[0].modbus is not None
    assert running.config.devices[0].modbus.port == 1502

    # The technician edits the local file: it wins from then on.
    local.write_text(_agent_yaml(2502))
    mine = load_agent_config(local, {})
    running, active = select_config(mine, Path(mine.config.state_dir), {})
    assert (active, running) == (None, mine)
    assert store.active() is None


def test_a_received_version_cannot_rename_the_agent_and_names_problems_as_sent(
    local: Path,
) -> None:
    mine = load_agent_config(local, {})
    store = RemoteConfigs(Path(mine.config.state_dir))
    store.stage(_bundle(3, _agent_yaml(502, agent_id="pc-2")))
    with pytest.raises(ConfigError) as info:
        store.load(3, mine, {})
    assert "agent.id: is 'pc-2' here but 'pc-1' on the agent" in str(info.value.problems[0])
    store.stage(_bundle(4, _agent_yaml(502).replace("test-meter", "nope")))
    with pytest.raises(ConfigError) as info:
        store.load(4, mine, {})
    assert str(info.value.problems[0]).startswith("agent.yaml:4: devices[0].profile: no profile")


def test_a_trial_survives_in_active_json(local: Path) -> None:
    store = RemoteConfigs(local.parent / "state")
    active = ActiveConfig(
        5, "d" * 64, Trial("c" * 8, 5, 1e9, 60.0, ("meter-01",), ActiveConfig(4, "e" * 64))
    )
    store.save(active)
    assert store.active() == active
    store.save(None)
    assert store.active() is None


async def test_a_local_edit_during_a_trial_still_wins_at_the_next_start(local: Path) -> None:
    from edge_agent.commands.reconfigure import Reconfigurer  # noqa: PLC0415

    mine = load_agent_config(local, {})
    state = Path(mine.config.state_dir)
    store = RemoteConfigs(state)
    store.stage(_bundle(2, _agent_yaml(1502)))
    trial = Trial("c" * 8, 2, 1e12, 60.0, (), None)
    store.save(ActiveConfig(2, local_digest(local), trial))

    class Agent:  # the running agent, as a trial sees it: broker up, no device to wait for
        def online_devices(self) -> set[str]:
            return set()

        def broker_connected(self) -> bool:
            return True

        def device_problem(self, device: str) -> str:
            return ""

        def reload(self) -> None:
            raise AssertionError("a kept version needs no reload")

    answers: list[tuple[str, str]] = []

    async def finish(command_id: str, status: str, detail: str) -> None:
        answers.append((status, detail))

    reconfigure = Reconfigurer(mine, store.active(), 2)
    reconfigure.agent = Agent()
    # The technician edits the file meanwhile.
    await asyncio.to_thread(local.write_text, _agent_yaml(2502))
    await reconfigure.prove(finish)  # type: ignore[arg-type]
    assert answers[0][0] == "done"
    running, active = select_config(load_agent_config(local, {}), state, {})
    assert active is None
    assert running.config.devices[0].modbus is not None
    assert running.config.devices[0].modbus.port == 2502
