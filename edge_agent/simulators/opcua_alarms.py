"""An OPC-UA alarm condition on the simulated server: a Boolean variable drives an OffNormalAlarm.

What a PLC's alarm does, for the agent's Alarms & Conditions path to meet: writing the variable
true raises the condition (active, unacknowledged, retained); the standard Acknowledge method
acknowledges it; false clears it, and a cleared, acknowledged condition is no longer retained.
Every transition is an event on the Server object (asyncua delivers an event to the monitored
items of the node that emits it, so the Server emits and `SourceNode` names the machine), and
ConditionRefresh re-sends the retained ones (asyncua's, `bind_condition_methods`).

The layout (namespace `urn:millstream:test:alarms`, `Press/GuardOpen`, `Press/GuardOpenAlarm`,
severity 700, "Guard door open") is the one the node-opcua interop server offers too
(tests/interop/node_opcua_alarms), so one test runs against both.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime
from typing import Any

from asyncua import Server, ua
from asyncua.common.methods import uamethod
from asyncua.common.node import Node

__all__ = ["ALARMS_NAMESPACE", "OffNormalCondition", "enable_conditions", "press_server"]

ALARMS_NAMESPACE = "urn:millstream:test:alarms"
_WATCH_S = 0.05  # how often the driving variable is looked at: a write shows within 50 ms


def enable_conditions(server: Server) -> None:
    """Before `server.init()`: serve ConditionRefresh (asyncua binds it only when asked)."""
    server.iserver.bind_condition_methods = True


async def press_server(url: str) -> tuple[Server, OffNormalCondition]:
    """An initialised (not yet started) server at `url` whose only machine is the press with the
    guard-door alarm: `async with server:` serves it, `alarm.start()` watches the door."""
    server = Server()
    server.set_endpoint(url)
    enable_conditions(server)
    await server.init()
    return server, await OffNormalCondition.install(server)


class OffNormalCondition:
    """One condition driven by one Boolean variable (module docstring)."""

    def __init__(
        self,
        server: Server,
        variable: Node,
        condition: Node,
        source: Node,
        *,
        name: str,
        source_name: str,
        severity: int,
        message: str,
    ) -> None:
        self.server = server
        self.variable = variable
        self.condition = condition
        self.source = source
        self.name = name
        self.source_name = source_name
        self.severity = severity
        self.message = message
        self.active = False
        self.acked = True
        self.acknowledged: list[str] = []  # the comments, in order (tests read them)
        self._event: Any = None
        self._since = datetime.now(UTC)
        self._task: asyncio.Task[None] | None = None

    @classmethod
    async def install(
        cls,
        server: Server,
        *,
        machine: str = "Press",
        variable: str = "GuardOpen",
        condition: str = "GuardOpenAlarm",
        severity: int = 700,
        message: str = "Guard door open",
    ) -> OffNormalCondition:
        """Add `machine/variable` and its condition `machine/condition` to a started-up server
        (after `init()`), and route Acknowledge calls to the conditions installed."""
        idx = await server.register_namespace(ALARMS_NAMESPACE)
        source = await server.nodes.objects.add_object(idx, machine)
        await source.set_event_notifier([ua.EventNotifier.SubscribeToEvents])
        await server.nodes.server.add_reference(source, ua.ObjectIds.HasNotifier)
        var = await source.add_variable(idx, variable, False, ua.VariantType.Boolean)
        await var.set_writable()
        cond = await source.add_object(idx, condition)
        await source.add_reference(cond, ua.ObjectIds.HasCondition)
        made = cls(
            server,
            var,
            cond,
            source,
            name=condition,
            source_name=machine,
            severity=severity,
            message=message,
        )
        generator = await server.get_event_generator(ua.ObjectIds.OffNormalAlarmType)
        # asyncua types UtcTime fields by a NodeId its encoder cannot use for a Variant.
        generator.event.data_types["ActiveState/TransitionTime"] = ua.VariantType.DateTime
        made._event = generator
        _conditions(server)[cond.nodeid] = made
        server.iserver.isession.add_method_callback(
            ua.NodeId(ua.Int32(ua.ObjectIds.AcknowledgeableConditionType_Acknowledge)),
            _acknowledge_method(server),
        )
        return made

    async def start(self) -> None:
        """Watch the variable (a client's write, or `set()`) and raise/clear on its changes."""
        self._task = asyncio.create_task(self._watch(), name=f"alarm-{self.name}")

    async def stop(self) -> None:
        """Stop watching."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def set(self, value: bool) -> None:
        """Drive the variable as the machine would (the watch turns it into the condition)."""
        await self.variable.write_value(value)

    @property
    def retained(self) -> bool:
        """The server keeps reporting a condition that is active or waits for acknowledgement."""
        return self.active or not self.acked

    async def _watch(self) -> None:
        seen = bool(await self.variable.read_value())
        while True:
            await asyncio.sleep(_WATCH_S)
            now = bool(await self.variable.read_value())
            if now == seen:
                continue
            seen = now
            self.active = now
            self._since = datetime.now(UTC)
            if now:
                self.acked = False
            await self._emit(self.message if now else f"{self.message}: back to normal")

    async def acknowledge(self, event_id: bytes, comment: str) -> ua.StatusCode | None:
        """The Acknowledge method of this condition (OPC 10000-9 §5.7.3)."""
        current = _bytes(self._event.event.EventId)
        if event_id != current:
            return ua.StatusCode(ua.UInt32(ua.StatusCodes.BadEventIdUnknown))
        if self.acked:
            return ua.StatusCode(ua.UInt32(ua.StatusCodes.BadConditionBranchAlreadyAcked))
        self.acked = True
        self.acknowledged.append(comment)
        await self._emit(f"{self.message}: acknowledged" + (f" ({comment})" if comment else ""))
        return None

    async def _emit(self, message: str) -> None:
        event = self._event.event
        event.NodeId = self.condition.nodeid
        event.SourceNode = self.source.nodeid
        event.SourceName = self.source_name
        event.ConditionName = self.name
        event.Severity = self.severity
        setattr(event, "EnabledState/Id", True)
        setattr(event, "ActiveState/Id", self.active)
        event.ActiveState = ua.LocalizedText("Active" if self.active else "Inactive")
        setattr(event, "ActiveState/TransitionTime", self._since)
        setattr(event, "AckedState/Id", self.acked)
        event.AckedState = ua.LocalizedText("Acknowledged" if self.acked else "Unacknowledged")
        event.Retain = self.retained
        await self._event.trigger(message=message)


def _conditions(server: Server) -> dict[ua.NodeId, OffNormalCondition]:
    found: dict[ua.NodeId, OffNormalCondition] | None = getattr(server, "_millstream_alarms", None)
    if found is None:
        found = {}
        server._millstream_alarms = found  # type: ignore[attr-defined]
    return found


def _acknowledge_method(server: Server) -> Any:
    @uamethod
    async def acknowledge(parent: ua.NodeId, event_id: Any, comment: Any) -> Any:
        condition = _conditions(server).get(parent)
        if condition is None:
            return ua.StatusCode(ua.UInt32(ua.StatusCodes.BadNodeIdUnknown))
        text = getattr(comment, "Text", comment)
        return await condition.acknowledge(_bytes(event_id), text if isinstance(text, str) else "")

    return acknowledge


def _bytes(value: Any) -> bytes:
    # The generator keeps EventId as a Variant; a client's argument arrives as bytes.
    raw = value.Value if isinstance(value, ua.Variant) else value
    return bytes(raw) if isinstance(raw, bytes | bytearray) else b""
