"""Mosquitto's dynamic security plugin, driven over MQTT (its documented control topic).

A command list goes to `$CONTROL/dynamic-security/v1`; the plugin answers on `…/response` with
one response per command, `error` set when it failed. Each command carries a `correlationData` of
our own, so answers are matched to the commands that asked, whoever else administers the broker.
The connecting user needs the plugin's admin role (docs/devices.md "Broker identities").
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Sequence
from types import TracebackType
from typing import Any, Self

from paho.mqtt.subscribeoptions import SubscribeOptions

from hub.config import MqttConfig
from hub.errors import MillstreamHubError
from hub.ingest.message import Incoming
from hub.ingest.mqtt import MqttSession

__all__ = ["CONTROL_TOPIC", "Dynsec", "DynsecError"]

CONTROL_TOPIC = "$CONTROL/dynamic-security/v1"
RESPONSE_TOPIC = f"{CONTROL_TOPIC}/response"
TIMEOUT_S = 10.0


class DynsecError(MillstreamHubError):
    """The broker refused a command (`.errors`: what it said), or never answered."""

    def __init__(self, message: str, errors: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.errors = list(errors)


class Dynsec:
    """`async with Dynsec(mqtt) as d: await d.run([...])` (one broker session)."""

    def __init__(self, mqtt: MqttConfig) -> None:
        self._config = mqtt
        self._waiting: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._session = MqttSession(
            mqtt,
            f"millstream-admin-{uuid.uuid4().hex[:12]}",
            self._deliver,
            topics=[(RESPONSE_TOPIC, SubscribeOptions(qos=1))],
            persistent=False,
            channel="dynsec",
        )

    async def __aenter__(self) -> Self:
        await self._session.__aenter__()
        try:
            await self._session.wait_connected(TIMEOUT_S)
            await self._session.wait_subscribed(TIMEOUT_S)
        except TimeoutError:
            await self._session.__aexit__(None, None, None)
            raise DynsecError(
                f"cannot reach the broker at {self._config.url} as {self._config.username!r}"
                f" in {TIMEOUT_S:g} s: check mqtt.url and the hub's broker credentials"
            ) from None
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._session.__aexit__(exc_type, exc, tb)

    def _deliver(self, msg: Incoming) -> None:
        self._session.ack([msg])
        try:
            responses = json.loads(msg.payload)["responses"]
        except (ValueError, KeyError, TypeError):
            return
        for response in responses if isinstance(responses, list) else ():
            waiter = self._waiting.pop(str(response.get("correlationData")), None)
            if waiter is not None and not waiter.done():
                waiter.set_result(response)

    async def run(
        self, commands: Sequence[dict[str, Any]], *, tolerate: Sequence[str] = ()
    ) -> list[dict[str, Any]]:
        """Send `commands` at once; their responses in order. Raises `DynsecError` naming every
        failed command unless its error contains one of `tolerate` (e.g. "not found")."""
        loop = asyncio.get_running_loop()
        tagged, futures = [], []
        for command in commands:
            tag = uuid.uuid4().hex
            future: asyncio.Future[dict[str, Any]] = loop.create_future()
            self._waiting[tag] = future
            futures.append(future)
            tagged.append({**command, "correlationData": tag})
        self._session.publish(CONTROL_TOPIC, json.dumps({"commands": tagged}).encode())
        try:
            async with asyncio.timeout(TIMEOUT_S):
                responses = list(await asyncio.gather(*futures))
        except TimeoutError:
            raise DynsecError(
                "the broker did not answer dynamic-security commands: is the plugin loaded"
                " (plugin …mosquitto_dynamic_security.so) and does the hub's broker user have"
                " its admin role?"
            ) from None
        failed = [
            f"{r.get('command')}: {r['error']}"
            for r in responses
            if r.get("error") and not any(t in str(r["error"]) for t in tolerate)
        ]
        if failed:
            raise DynsecError("the broker refused: " + "; ".join(failed), failed)
        return responses
