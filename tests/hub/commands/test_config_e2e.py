"""Remote configuration end to end: `millstream-hub agents config …` on PostgreSQL and
Mosquitto, `edge-agent run`, and a pymodbus counter as the ground truth of "no reading lost":
the device counts up on every read, so every value it served is a reading the hub must hold."""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from tests.edge_agent.drivers.modbus.modbus_harness import sim_device, tcp_server
from tests.harness import free_port
from tests.harness.hubproc import HUB
from tests.hub.commands.test_write_e2e import running_line

pytestmark = [pytest.mark.asyncio(loop_scope="session"), pytest.mark.timeout(300)]

COUNTER_PROFILE = """
profile: test-counter
vendor: Millstream tests
model: Counter
protocol: modbus
source: written for this test
defaults: {poll_ms: 100}
tags:
  - {name: count, table: holding, address: 0, type: uint16}
"""
ROLLBACK_AFTER = 10


class CounterDevice:
    """Holding register 0 counts the reads that cover it; `served` is every value answered."""

    def __init__(self) -> None:
        self.served: list[int] = []
        self.device = sim_device(1, holding={0: 0}, action=self._action)

    async def _action(
        self, function_code: int, start: int, address: int, count: int,
        registers: list[int], values: Any,
    ) -> None:  # fmt: skip
        if function_code == 3 and values is None and address <= 0 < address + count:
            registers[0 - start] = (registers[0 - start] + 1) & 0xFFFF
            self.served.append(registers[0 - start])


async def _cli(hub_config: Path, *args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        HUB, *args, "--config", str(hub_config),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    async with asyncio.timeout(120):
        out, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def _stored(dsn: str, site: str) -> list[float]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT r.value FROM readings r JOIN series s ON s.id = r.series_id"
            " WHERE s.site = $1 AND s.tag = 'count' ORDER BY r.ts",
            site,
        )
        return [float(r["value"]) for r in rows]
    finally:
        await conn.close()


async def test_a_pushed_config_is_kept_or_rolled_back_and_no_reading_is_lost(
    mosquitto: Any, pg_dsn: str, tmp_path: Path
) -> None:
    counter, modbus = CounterDevice(), free_port()
    device = (
        "  - machine: counter-01\n    profile: test-counter\n"
        f"    modbus: {{host: 127.0.0.1, port: {modbus}, unit: 1}}\n"
    )
    hub_config = tmp_path / "hub.yaml"
    async with (
        tcp_server([counter.device], modbus),
        running_line(
            tmp_path, mosquitto, pg_dsn, ("test-counter.yaml", COUNTER_PROFILE), device
        ) as line,
    ):
        agent_id = f"pc-{line.site.removeprefix('s')}"
        local = (tmp_path / "agent" / "agent.yaml").read_text()
        edits = tmp_path / "edits"
        edits.mkdir()
        (edits / "test-counter.yaml").write_text(COUNTER_PROFILE)

        async def push(text: str, *args: str) -> tuple[int, str, str, float]:
            (edits / "agent.yaml").write_text(text)
            started = time.monotonic()
            code, out, err = await _cli(
                hub_config, "agents", "config", "push", agent_id, str(edits / "agent.yaml"),
                "--rollback-after", str(ROLLBACK_AFTER), "--wait", "60", *args,
            )  # fmt: skip
            return code, out, err, time.monotonic() - started

        deadline = time.monotonic() + 30
        while len(await _stored(pg_dsn, line.site)) < 10:
            assert time.monotonic() < deadline, "no readings arrived"
            await asyncio.sleep(0.2)

        # A valid version: switched to, proven, kept.
        valid = local.replace("reconnect_min: 100ms", "reconnect_min: 100ms, status_interval: 5s")
        assert valid != local
        code, out, err, _took = await push(valid, "--comment", "status every 5 s")
        assert code == 0, out + err
        assert "sent config version 1" in out
        assert "kept: config version 1 applied: devices back online: counter-01" in out
        state = (await line.api["admin"].get(f"/agents/{agent_id}/config")).json()
        assert state["version"] == 1
        assert state["config"]["files"]["agent.yaml"] == valid
        assert state["config"]["files"]["test-counter.yaml"] == COUNTER_PROFILE
        assert (await line.api["operator"].get(f"/agents/{agent_id}/config")).status_code == 403

        # A version that breaks the device: rolled back by the agent itself, in time.
        broken = valid.replace(f"port: {modbus}", f"port: {free_port()}")
        code, out, err, took = await push(broken, "--comment", "wrong port")
        assert code == 1, out + err
        assert "rolled back: rolled back to config version 1: device counter-01 stayed " in err
        assert took <= ROLLBACK_AFTER + 10, took

        # A version whose broker cannot be reached: rolled back too; the answer comes once
        # the agent is back on the settings that reach the broker.
        unreachable = valid.replace(mosquitto.url, f"mqtt://127.0.0.1:{free_port()}")
        assert unreachable != valid
        code, out, err, took = await push(unreachable)
        assert code == 1, out + err
        assert "rolled back to config version 1: the broker could not be reached" in err
        assert took <= ROLLBACK_AFTER + 10, took

        # An invalid version: refused with the validation's words, never switched to.
        invalid = valid.replace("unit: 1", "unit: 999")
        code, out, err, _took = await push(invalid)
        assert code == 1, out + err
        assert "refused: config version 4 is not valid (1 problem): agent.yaml" in err
        assert "devices[0].modbus.unit" in err
        moved = valid.replace("buffer: {path: ./buffer.db}", "buffer: {path: ./other.db}")
        code, _out, err, _took = await push(moved)
        assert code == 1
        assert "buffer.path" in err
        assert "cannot change it (readings buffered there would be left behind)" in err
        # A secret never leaves the hub machine.
        code, _out, err, _took = await push(valid.replace("mqtt: {", "mqtt: {password: hunter2, "))
        assert code == 1
        assert "holds a secret" in err
        assert "nothing was pushed" in err

        code, out, _err = await _cli(hub_config, "agents", "config", "history", agent_id, "--json")
        assert code == 0
        history = json.loads(out)
        assert [(h["version"], h["status"]) for h in history] == [
            (5, "refused"), (4, "refused"), (3, "failed"), (2, "failed"), (1, "done"),
        ]  # fmt: skip
        assert history[4]["comment"] == "status every 5 s"
        assert history[4]["pushed_by"].startswith("cli:")  # who, for the audit log
        code, out, _err = await _cli(hub_config, "agents", "config", "get", agent_id)
        assert (code, out) == (0, valid)
        # The fleet view's column: the version kept, and the newest push with its fate.
        # (The broker is the session's: other tests' agents may have left retained statuses.)
        agents = (await line.api["viewer"].get("/agents")).json()
        fleet = next(a for a in agents if a["agent_id"] == agent_id)
        assert (fleet["config_version"], fleet["config_latest"], fleet["config_latest_status"]) == (
            1, 5, "refused",
        )  # fmt: skip

        # Back to version 1 explicitly: pushed again as version 6, kept; its files to edit.
        code, out, err = await _cli(
            hub_config, "agents", "config", "rollback", agent_id, "--to", "1",
            "--rollback-after", str(ROLLBACK_AFTER),
        )  # fmt: skip
        assert code == 0, out + err
        assert "returning" in err
        assert "kept: config version 6 applied" in out
        code, out, _err = await _cli(
            hub_config, "agents", "config", "get", agent_id, "--out", str(tmp_path / "got")
        )
        assert code == 0
        assert (tmp_path / "got" / "agent.yaml").read_text() == valid
        assert (tmp_path / "got" / "test-counter.yaml").read_text() == COUNTER_PROFILE

        # Ground truth: every value the device served reached PostgreSQL exactly once, across
        # six switches: a stopping agent lets the poll in flight finish and drains what its
        # drivers read into the buffer.
        frozen = len(counter.served)
        await asyncio.sleep(2)
        target = counter.served[frozen - 1]
        deadline = time.monotonic() + 30
        while target not in await _stored(pg_dsn, line.site):
            assert time.monotonic() < deadline, "the last served value never arrived"
            await asyncio.sleep(0.2)
        stored = await _stored(pg_dsn, line.site)
        served = counter.served[:frozen]
        assert len(stored) == len(set(stored)), "a reading was stored twice"
        missing = set(map(float, served)) - set(stored)
        assert not missing, sorted(missing)


async def test_an_agent_killed_during_a_trial_still_rolls_back_and_answers(
    mosquitto: Any, pg_dsn: str, tmp_path: Path
) -> None:
    counter, modbus = CounterDevice(), free_port()
    device = (
        "  - machine: counter-01\n    profile: test-counter\n"
        f"    modbus: {{host: 127.0.0.1, port: {modbus}, unit: 1}}\n"
    )
    hub_config = tmp_path / "hub.yaml"
    async with (
        tcp_server([counter.device], modbus),
        running_line(
            tmp_path, mosquitto, pg_dsn, ("test-counter.yaml", COUNTER_PROFILE), device
        ) as line,
    ):
        agent_id = f"pc-{line.site.removeprefix('s')}"
        local = tmp_path / "agent" / "agent.yaml"
        edits = tmp_path / "edits"
        edits.mkdir()
        (edits / "test-counter.yaml").write_text(COUNTER_PROFILE)
        (edits / "agent.yaml").write_text(
            local.read_text().replace(f"port: {modbus}", f"port: {free_port()}")
        )
        deadline = time.monotonic() + 30
        while len(await _stored(pg_dsn, line.site)) < 5:
            assert time.monotonic() < deadline, "no readings arrived"
            await asyncio.sleep(0.2)
        code, out, err = await _cli(
            hub_config, "agents", "config", "push", agent_id, str(edits / "agent.yaml"),
            "--rollback-after", str(ROLLBACK_AFTER), "--wait", "0",
        )  # fmt: skip
        assert code == 0, out + err
        pushed = time.monotonic()
        trial = tmp_path / "agent" / "state" / "remote-config" / "active.json"
        while '"trial": null' in (trial.read_text() if trial.exists() else '"trial": null'):
            assert time.monotonic() - pushed < 15, "the agent never began the trial"
            await asyncio.sleep(0.1)
        # In the middle of the trial, the agent dies without a word, and is started again.
        await line.kill_and_restart_agent()

        async def answered() -> dict[str, Any]:
            code, out, _err = await _cli(hub_config, "agents", "config", "history", agent_id,
                                         "--json")  # fmt: skip
            assert code == 0
            return dict(json.loads(out)[0])

        while (latest := await answered())["status"] == "pending":
            assert time.monotonic() - pushed < ROLLBACK_AFTER + 20, "no answer after the crash"
            await asyncio.sleep(0.5)
        assert latest["status"] == "failed"
        assert (
            "rolled back to the agent's own config file: device counter-01 stayed offline"
            in (latest["detail"])
        )
        # Back on its own file: the machine is read again.
        before = len(await _stored(pg_dsn, line.site))
        deadline = time.monotonic() + 30
        while len(await _stored(pg_dsn, line.site)) <= before + 5:
            assert time.monotonic() < deadline, "readings never resumed"
            await asyncio.sleep(0.2)
        assert not trial.exists(), "the agent's own file is active again"
