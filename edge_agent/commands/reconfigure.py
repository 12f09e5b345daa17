"""`config` commands: validate a configuration from the hub, switch to it, prove it, keep it or
go back by itself.

1. `prepare`: the files are kept as their version (edge_agent/config/remote.py) and loaded as
   `edge-agent validate` would; any problem refuses the command with every problem named.
2. `begin`: the devices online now (and still configured) are the ones the new version must
   bring back; the trial is written to active.json (with what to go back to) and the agent
   reloads — a graceful stop that commits every buffered reading, then a start with the new
   version (edge_agent/cli/run.py).
3. `prove`, in the restarted agent: the version is kept once every watched device has answered
   and the broker has been reached; if `rollback_after` passes first, the previous configuration
   becomes active again and the agent reloads once more. The result says which, and why.

The command stays `running` in the journal during the trial: it is answered once, by `prove`,
whichever process that is.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Protocol

import wire
from edge_agent.config.loader import LoadedConfig
from edge_agent.config.remote import ActiveConfig, RemoteConfigs, Trial, local_digest
from edge_agent.errors import ConfigError

__all__ = ["AgentView", "Reconfigurer"]

log = logging.getLogger(__name__)

_CHECK_S = 0.5


class AgentView(Protocol):
    """What the running agent tells a trial, and how it reloads."""

    def online_devices(self) -> set[str]: ...

    def broker_connected(self) -> bool: ...

    def device_problem(self, device: str) -> str: ...

    def reload(self) -> None: ...


Finish = Callable[[str, wire.CommandStatus, str], Awaitable[None]]


class Reconfigurer:
    """The agent's side of `config` commands (module docstring)."""

    def __init__(
        self,
        local: LoadedConfig,
        active: ActiveConfig | None,
        running_version: int | None,
        *,
        env: Mapping[str, str] = os.environ,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.local = local
        self.active = active
        self.running_version = running_version
        self.store = RemoteConfigs(Path(local.config.state_dir))
        self.agent: AgentView | None = None
        self._env = env
        self._clock = clock
        self._next: tuple[wire.ConfigBundle, frozenset[str]] | None = None

    @property
    def trial(self) -> Trial | None:
        """The version on trial, if any."""
        return None if self.active is None else self.active.trial

    def refusal(self) -> str | None:
        """Why no config command can start now, or None."""
        trial = self.trial
        if trial is not None:
            return (
                f"config version {trial.version} is still on trial (for up to "
                f"{trial.rollback_after:g} s): send this one after its result"
            )
        return None

    def prepare(self, bundle: wire.ConfigBundle) -> list[str]:
        """Keep and validate a version; its problems in words (empty: valid). Blocking I/O."""
        self.store.stage(bundle)
        try:
            loaded = self.store.load(bundle.version, self.local, self._env)
        except ConfigError as exc:
            return [str(p) for p in exc.problems]
        self._next = bundle, frozenset(d.device.machine for d in loaded.devices)
        return []

    async def begin(self, command_id: str) -> Trial:
        """Put the prepared version on trial and reload the agent with it."""
        assert self._next is not None, "prepare() first"
        assert self.agent is not None, "bound to the running agent"
        bundle, devices = self._next
        watch = tuple(sorted(self.agent.online_devices() & devices))
        before = (
            None
            if self.active is None
            else ActiveConfig(self.active.version, self.active.local_digest)
        )
        trial = Trial(
            command_id=command_id,
            version=bundle.version,
            deadline=self._clock() + bundle.rollback_after,
            rollback_after=bundle.rollback_after,
            watch=watch,
            before=before,
        )
        digest = await asyncio.to_thread(local_digest, self.local.path)
        self.active = ActiveConfig(bundle.version, digest, trial)
        await asyncio.to_thread(self.store.save, self.active)
        log.info(
            "switching to config version %d from the hub; kept if %s and the broker answer "
            "within %g s",
            bundle.version,
            ", ".join(watch) or "(no device was online)",
            bundle.rollback_after,
        )
        self.agent.reload()
        return trial

    async def prove(self, finish: Finish) -> None:
        """Keep the version on trial or go back to the one before (module docstring)."""
        trial = self.trial
        assert trial is not None
        assert self.agent is not None
        agent = self.agent
        seen: set[str] = set()
        reached = False
        while self.running_version == trial.version:
            seen |= agent.online_devices() & set(trial.watch)
            reached = reached or agent.broker_connected()
            if reached and seen >= set(trial.watch):
                await self._keep(trial, finish)
                return
            if self._clock() >= trial.deadline:
                break
            await asyncio.sleep(_CHECK_S)
        if self.running_version != trial.version:
            reasons = [f"version {trial.version} no longer loads on the agent"]
        else:
            reasons = [
                f"device {name} stayed offline {trial.rollback_after:g} s with version "
                f"{trial.version} ({agent.device_problem(name)})"
                for name in trial.watch
                if name not in seen
            ]
            if not reached:
                reasons.append(
                    f"the broker could not be reached with version {trial.version}'s settings "
                    f"in {trial.rollback_after:g} s"
                )
        await self._roll_back(trial, reasons, finish)

    async def _keep(self, trial: Trial, finish: Finish) -> None:
        # The local file as it was at the switch: edited since (during the trial), the edit
        # wins at the next start, as any edit made after a version became active does.
        assert self.active is not None  # the trial is kept in it
        self.active = ActiveConfig(trial.version, self.active.local_digest)
        await asyncio.to_thread(self.store.save, self.active)
        online = ", ".join(trial.watch) or "no device was online before"
        detail = (
            f"config version {trial.version} applied: devices back online: {online}; broker reached"
        )
        log.info("%s", detail)
        await finish(trial.command_id, "done", detail)

    async def _roll_back(self, trial: Trial, reasons: list[str], finish: Finish) -> None:
        assert self.agent is not None
        self.active = trial.before
        # The previous state first: a crash from here on restarts the agent on it.
        await asyncio.to_thread(self.store.save, self.active)
        back_to = "the agent's own config file" if trial.before is None else (
            f"config version {trial.before.version}"
        )  # fmt: skip
        detail = f"rolled back to {back_to}: " + "; ".join(reasons)
        log.error("config version %d %s", trial.version, detail)
        await finish(trial.command_id, "failed", detail)
        self.agent.reload()
