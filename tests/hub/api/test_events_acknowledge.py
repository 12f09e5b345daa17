"""`POST /api/v1/events/acknowledge`: an operator's acknowledge of a machine's alarm condition
goes as an `acknowledge` command through a real Mosquitto to the machine's agent, whose answer
the hub (ingest, PostgreSQL, API in one process) stores and returns; the audit log keeps it.

The agent here is a stand-in MQTT client that answers the way `edge-agent run` does
(tests/edge_agent/commands/test_executor_acknowledge.py tests the agent's side)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

import aiomqtt
import httpx
import pytest
from apitest import migrate, now_ms, running_hub, unique

import wire
from hub.auth import AuthStore, Role, make_api_key
from hub.sql import open_database

pytestmark = pytest.mark.asyncio(loop_scope="session")

MACHINE = "press-01"
CONDITION = "c7f3a90b12e4"  # the occurrence the stand-in agent can acknowledge


class StandInAgent:
    """Reports polling MACHINE; answers each command once: `done` for CONDITION, else refused."""

    def __init__(self, client: aiomqtt.Client, agent_id: str, site: str) -> None:
        self.client, self.agent_id, self.site = client, agent_id, site
        self.commands: list[wire.Command] = []

    async def report(self) -> None:
        status = wire.encode_agent_status(
            "online", now_ms(), site=self.site, line="l1",
            devices={MACHINE: wire.DeviceStatus(online=True)},
        )  # fmt: skip
        await self.client.publish(wire.agent_status_topic(self.agent_id), status, qos=1)

    async def answer(self) -> None:
        async for message in self.client.messages:
            payload = message.payload
            assert isinstance(payload, bytes)
            _agent, command = wire.parse_command(str(message.topic), payload)
            self.commands.append(command)
            if command.kind == "acknowledge" and command.event == CONDITION:
                status: wire.CommandStatus = "done"
                detail = f"acknowledged {command.machine} event {command.event}"
            else:
                status = "refused"
                detail = f"{command.machine} has no unacknowledged condition {command.event}"
            result = wire.CommandResult(id=command.id, status=status, detail=detail, ts=now_ms())
            await self.client.publish(
                wire.cmd_result_topic(self.agent_id), wire.encode_command_result(result), qos=1
            )


@contextlib.asynccontextmanager
async def stand_in_agent(mosquitto: Any, site: str) -> AsyncIterator[StandInAgent]:
    agent_id = unique("pc-")
    async with aiomqtt.Client(mosquitto.host, mosquitto.port, identifier=agent_id) as client:
        await client.subscribe(wire.cmd_topic(agent_id), qos=1)
        agent = StandInAgent(client, agent_id, site)
        task = asyncio.create_task(agent.answer(), name="stand-in-agent")
        try:
            yield agent
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def _keys(dsn: str) -> dict[Role, str]:
    keys: dict[Role, str] = {}
    async with open_database(dsn) as db:
        store = AuthStore(db)
        for role in Role:
            key_id, key, hashed = make_api_key()
            assert await store.add_api_key(key_id, f"{role.value}-key", role, hashed, 0)
            keys[role] = key
    return keys


async def test_an_operator_acknowledges_a_condition_through_the_agent(
    mosquitto: Any, pg_dsn: str
) -> None:
    await migrate(pg_dsn)
    keys = await _keys(pg_dsn)
    site = unique("s")
    body = {"site": site, "line": "l1", "machine": MACHINE, "id": CONDITION,
            "comment": "guard closed, restarting"}  # fmt: skip
    async with (
        running_hub(mosquitto.url, pg_dsn) as (_hub, base),
        httpx.AsyncClient(base_url=f"{base}/api/v1", timeout=30) as http,
        stand_in_agent(mosquitto, site) as agent,
    ):

        def as_(role: Role) -> dict[str, str]:
            return {"X-API-Key": keys[role]}

        # Until an agent reports polling the machine, nothing could carry the command.
        url = "/events/acknowledge"
        r = await http.post(url, json=body, headers=as_(Role.OPERATOR))
        assert r.status_code == 404, r.text
        assert "no agent has reported polling" in r.json()["detail"]
        deadline = time.monotonic() + 30
        while True:  # the status is stored by the ingest, a moment after it is published
            await agent.report()
            r = await http.post(url, json=body, headers=as_(Role.OPERATOR))
            if r.status_code != 404 or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.2)
        assert r.status_code == 200, r.text
        done = r.json()
        assert (done["kind"], done["status"]) == ("acknowledge", "done")
        assert done["detail"] == f"acknowledged {MACHINE} event {CONDITION}"
        assert (done["machine"], done["agent_id"]) == (MACHINE, agent.agent_id)
        assert done["issued_by"] == "key:operator-key"
        sent = agent.commands[-1]
        assert (sent.kind, sent.machine, sent.event, sent.comment) == (
            "acknowledge", MACHINE, CONDITION, "guard closed, restarting"
        )  # fmt: skip
        assert sent.issued_by == "key:operator-key"

        # The agent's refusal comes back as it said it.
        r = await http.post(url, json={**body, "id": "ffee01"}, headers=as_(Role.OPERATOR))
        assert r.status_code == 200, r.text
        assert (r.json()["status"], r.json()["detail"]) == (
            "refused", f"{MACHINE} has no unacknowledged condition ffee01"
        )  # fmt: skip

        # A viewer may not; a malformed request never reaches the agent.
        sent_so_far = len(agent.commands)
        r = await http.post(url, json=body, headers=as_(Role.VIEWER))
        assert r.status_code == 403
        for bad in ({"id": "ns=2;i=7"}, {"comment": "c" * 513}, {"machine": "a b"},
                    {"comment": "a\u0000b"}, {"extra": 1}):  # fmt: skip
            r = await http.post(url, json={**body, **bad}, headers=as_(Role.OPERATOR))
            assert r.status_code == 422, (bad, r.text)
        # 512 characters the API takes, but 1,536 bytes of UTF-8 are more than the wire carries.
        r = await http.post(url, json={**body, "comment": "€" * 512}, headers=as_(Role.OPERATOR))
        assert r.status_code == 422, r.text
        await asyncio.sleep(0.3)
        assert len(agent.commands) == sent_so_far

        # The audit log keeps who acknowledged which event, and with what comment.
        rows = (await http.get("/commands", headers=as_(Role.ADMIN))).json()
        assert [(c["kind"], c["tag"], c["value"], c["status"]) for c in rows] == [
            ("acknowledge", "ffee01", "guard closed, restarting", "refused"),
            ("acknowledge", CONDITION, "guard closed, restarting", "done"),
        ]
