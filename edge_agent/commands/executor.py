"""Receive commands, run each at most once, and hand its result to the publisher.

The publisher calls `receive` for every message on the agent's `cmd` topic and acknowledges
the message (PUBACK) only after `receive` returns, i.e. after the command is journalled; `run`
executes journalled commands one at a time, in the order they arrived; the publisher sends
`unsent()` results on `cmd/res` and reports each one the broker took with `sent()`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Mapping

import wire
from edge_agent.commands.journal import CommandJournal, JournalEntry
from edge_agent.commands.reconfigure import Reconfigurer
from edge_agent.drivers.base import AcknowledgingDriver, CallingDriver, Value, WritingDriver
from edge_agent.errors import DecodeError, DeviceUnavailable, WriteFailed, WriteRefused

__all__ = ["CommandExecutor"]

log = logging.getLogger(__name__)

# A write that takes longer than this has met a device in trouble; the result says so.
WRITE_TIMEOUT_S = 10.0
_INTERRUPTED = (
    "the agent stopped while executing this command; it is not run again (at most once): "
    "check the value on the machine"
)


class CommandExecutor:
    """The agent's side of wire commands (module docstring)."""

    def __init__(
        self,
        agent_id: str,
        journal: CommandJournal,
        devices: Mapping[str, object],
        *,
        clock: Callable[[], float] = time.time,
        reconfigure: Reconfigurer | None = None,
    ) -> None:
        self.reconfigure = reconfigure
        self.topic = wire.cmd_topic(agent_id)
        self.result_topic = wire.cmd_result_topic(agent_id)
        self.journal = journal
        self.devices = devices
        self.results_ready = asyncio.Event()
        self.executed = 0
        self._wake = asyncio.Event()
        self._clock = clock

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    # -- the publisher's side ----------------------------------------------------------------

    async def receive(self, payload: bytes) -> None:
        """Journal a command (durably) before its delivery is acknowledged."""
        now = self._now_ms()
        try:
            _agent, command = wire.parse_command(self.topic, payload)
        except wire.PayloadError as exc:
            command_id = _id_of(payload)
            if command_id is None:
                log.warning("ignoring a command without a readable id: %s", exc)
                return
            result = self._result(command_id, "refused", f"not a valid command: {exc}")
            if await asyncio.to_thread(self.journal.refuse, command_id, result, now):
                log.warning("command %s refused: %s", command_id, exc)
                self.results_ready.set()
            return
        new = await asyncio.to_thread(
            self.journal.receive, command.id, payload, command.expires_at, now
        )
        if new:
            self._wake.set()
            return
        # Delivered again: never run twice; answer again in case the first answer was lost.
        entry = await asyncio.to_thread(self.journal.get, command.id)
        log.info("command %s delivered again: not run again", command.id)
        if entry is not None and entry.state == "finished":
            await asyncio.to_thread(self.journal.resend, command.id)
            self.results_ready.set()

    async def unsent(self) -> list[tuple[str, bytes]]:
        """Results the broker does not have yet: (command id, payload)."""
        return await asyncio.to_thread(self.journal.unsent)

    async def sent(self, command_id: str) -> None:
        """The broker took this result (PUBACK)."""
        await asyncio.to_thread(self.journal.sent, command_id, self._now_ms())

    # -- execution ---------------------------------------------------------------------------

    async def run(self) -> None:
        """Execute journalled commands until cancelled."""
        trial = None if self.reconfigure is None else self.reconfigure.trial
        for entry in await asyncio.to_thread(self.journal.interrupted):
            if trial is None or entry.id != trial.command_id:  # a trial is answered when proven
                await self._finish(entry.id, "failed", _INTERRUPTED)
        async with asyncio.TaskGroup() as tg:
            if trial is not None and self.reconfigure is not None:
                tg.create_task(self.reconfigure.prove(self._finish), name="config-trial")
            while True:
                self._wake.clear()
                for entry in await asyncio.to_thread(self.journal.queued):
                    await self._execute(entry)
                await self._wake.wait()

    async def _execute(self, entry: JournalEntry) -> None:
        command = wire.Command.model_validate_json(entry.body)
        if self._now_ms() > command.expires_at:
            await self._finish(command.id, "expired", "arrived after expires_at: not run")
            return
        refusal = self._refusal(command)
        if refusal is not None:
            await self._finish(command.id, "refused", refusal)
            return
        if not await asyncio.to_thread(self.journal.start, command.id):
            return  # started before (another round got here first)
        if command.kind == "config":
            await self._reconfigure(command)
            return
        if command.kind == "write":
            what = f"{command.machine}.{command.tag} = {command.value!r}"
        elif command.kind == "call":
            what = f"{command.machine}.{command.method}({', '.join(map(repr, command.args))})"
        else:
            what = f"{command.machine} event {command.event}"
        try:
            async with asyncio.timeout(WRITE_TIMEOUT_S):
                previous, read_back, outputs = await self._run(command)
        except WriteRefused as exc:
            await self._finish(command.id, "refused", str(exc))
        except (DeviceUnavailable, DecodeError, WriteFailed) as exc:
            await self._finish(command.id, "failed", f"{what}: {exc}")
        except TimeoutError:
            await self._finish(
                command.id, "failed", f"{what}: no answer within {WRITE_TIMEOUT_S:g} s"
            )
        except Exception as exc:  # one bad command must not stop the others
            log.exception("command %s: unexpected error", command.id)
            await self._finish(command.id, "failed", f"{what}: internal error: {exc!r}")
        else:
            verb = {"write": "wrote", "call": "called"}.get(command.kind, "acknowledged")
            await self._finish(
                command.id, "done", f"{verb} {what}", read_back=read_back, previous=previous,
                outputs=outputs,
            )  # fmt: skip
        log.info("command %s from %s: %s", command.id, command.issued_by, what)

    async def _reconfigure(self, command: wire.Command) -> None:
        """Validate a configuration and put it on trial; answered when the trial ends."""
        assert self.reconfigure is not None
        assert command.config is not None
        bundle = command.config
        try:
            problems = await asyncio.to_thread(self.reconfigure.prepare, bundle)
        except OSError as exc:
            await self._finish(command.id, "failed", f"cannot keep config version "
                               f"{bundle.version} in the state folder: {exc}")  # fmt: skip
            return
        if problems:
            count = len(problems)
            detail = f"config version {bundle.version} is not valid ({count} problem"
            detail += f"{'s' if count != 1 else ''}): " + "; ".join(problems)
            await self._finish(command.id, "refused", detail)
            return
        log.info("command %s from %s: config version %d", command.id, command.issued_by,
                 bundle.version)  # fmt: skip
        await self.reconfigure.begin(command.id)

    def _refusal(self, command: wire.Command) -> str | None:
        """Why a command is refused before anything is sent to the machine, or None."""
        if command.kind == "config":
            if self.reconfigure is None:
                return (
                    "this agent is embedded in another program, which owns its configuration: "
                    "config commands are for agents started with `edge-agent run`"
                )
            return self.reconfigure.refusal()
        device = self.devices.get(command.machine or "")
        if device is None:
            return f"this agent has no device {command.machine!r}"
        able = {"write": WritingDriver, "call": CallingDriver}.get(
            command.kind, AcknowledgingDriver
        )
        if not isinstance(device, able):
            return f"{command.machine}: its protocol cannot {command.kind} yet"
        return None

    async def _run(self, command: wire.Command) -> tuple[Value, Value, tuple[Value, ...] | None]:
        """(value before, value read back, outputs) of a write, a call or an acknowledge."""
        device = self.devices[command.machine or ""]
        if command.kind == "acknowledge":
            assert isinstance(device, AcknowledgingDriver)
            assert command.event is not None  # an acknowledge names it (wire checked)
            await device.acknowledge(command.event, command.comment)
            return None, None, None
        if command.kind == "write":
            assert isinstance(device, WritingDriver)
            assert command.tag is not None  # a write names it (wire checked)
            previous, read_back = await device.write(command.tag, command.value)
            return previous, read_back, None
        assert isinstance(device, CallingDriver)
        assert command.method is not None  # a call names it (wire checked)
        return None, None, tuple(await device.call(command.method, command.args))

    async def _finish(
        self,
        command_id: str,
        status: wire.CommandStatus,
        detail: str,
        *,
        read_back: Value = None,
        previous: Value = None,
        outputs: tuple[Value, ...] | None = None,
    ) -> None:
        result = self._result(
            command_id, status, detail, read_back=read_back, previous=previous, outputs=outputs
        )
        await asyncio.to_thread(self.journal.finish, command_id, result)
        self.executed += 1
        if status != "done":
            log.warning("command %s %s: %s", command_id, status, detail)
        self.results_ready.set()

    def _result(
        self,
        command_id: str,
        status: wire.CommandStatus,
        detail: str,
        *,
        read_back: Value = None,
        previous: Value = None,
        outputs: tuple[Value, ...] | None = None,
    ) -> bytes:
        return wire.encode_command_result(
            wire.CommandResult(
                id=command_id,
                status=status,
                detail=detail[:1000].replace("\0", ""),
                ts=self._now_ms(),
                read_back=read_back,
                previous=previous,
                outputs=outputs,
            )
        )


def _id_of(payload: bytes) -> str | None:
    """The command id of a message that is not a valid command, if it has a usable one."""
    try:
        doc = json.loads(payload)
        candidate = doc.get("id") if isinstance(doc, dict) else None
        wire.CommandResult(id=candidate, status="refused", ts=0)
    except (ValueError, TypeError):
        return None
    return str(candidate)
