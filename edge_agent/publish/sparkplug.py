"""The agent as a Sparkplug B edge node (`mqtt.output: sparkplug`, docs/sparkplug.md).

The buffer is unchanged: batches are kept, claimed and receipted as wire-contract JSON. Only at
the moment a batch goes on the wire is it framed as a Sparkplug DDATA message for its machine
(one Sparkplug device per machine): with the node's running `seq`, metrics by alias (by name too
the first time a tag appears after a birth), and `is_historical` when it comes from the backlog.
`uuid` carries `ms:{agent id}:{batch seq}`, so a Millstream hub acting as the primary host can
receipt the batch: it re-encodes what it decoded and receipts that digest, which deletes the
batch here only if the hub stored exactly these readings (a third-party host ignores the field;
use `mqtt.receipts: false` there, and batches go on PUBACK).

Each connection gets a new `bdSeq`, in its NDEATH will and its NBIRTH; every (re)connect, rebirth
request (NCMD `Node Control/Rebirth`) and return of the primary host publishes NBIRTH and a DBIRTH
per machine declaring every tag it has (from the meta) with its alias, data type and last value.
While the host named by `mqtt.sparkplug.host_id` is offline (its STATE), nothing is sent: the
readings stay in the buffer and go out later from the backlog, as history.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import wire
from wire import sparkplug as spb

__all__ = ["SparkplugEdge"]

log = logging.getLogger(__name__)

REBIRTH = "Node Control/Rebirth"
_BOOLEAN = spb.DATATYPES["Boolean"]
_UINT64 = spb.DATATYPES["UInt64"]
_DOUBLE = spb.DATATYPES["Double"]


class SparkplugEdge:
    """Births, deaths, framing and the host's STATE for one agent (see module docstring)."""

    def __init__(
        self,
        agent_id: str,
        group: str,
        node: str,
        *,
        host_id: str | None,
        tags: Mapping[str, Iterable[str]],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._src = agent_id
        self._group = group
        self._node = node
        self._host_id = host_id
        self._clock = clock
        # Per connection; starts where the clock puts it so a restart does not reuse the last
        # process's bdSeq (a stale NDEATH must not match the new birth).
        self._bd_seq = int(clock()) % 256
        self._seq = 0
        self._aliases: dict[tuple[str, str], int] = {}
        self._declared: dict[tuple[str, str], int] = {}  # datatype each tag was born with
        self._last: dict[tuple[str, str], tuple[Any, str, int]] = {}  # value, quality, ts
        self._devices: dict[str, list[str]] = {d: list(t) for d, t in tags.items()}
        for device, names in self._devices.items():
            for name in names:
                self._alias(device, name)
        self._host_ts = -1
        # Set while the primary host is online (always, when no host is named).
        self.host_online = asyncio.Event()
        if host_id is None:
            self.host_online.set()
        # Set when births must be published again (rebirth request, the host came back, a tag
        # changed type).
        self.rebirth = asyncio.Event()
        # Set while data may go out: the host is online and this connection's births are out.
        self.clear_to_send = asyncio.Event()

    def ask_rebirth(self) -> None:
        """Births again before any more data (each new connection, a host's request)."""
        self.clear_to_send.clear()
        self.rebirth.set()

    @property
    def bd_seq(self) -> int:
        """The current connection's birth/death sequence number."""
        return self._bd_seq

    def _alias(self, device: str, tag: str) -> int:
        key = (device, tag)
        alias = self._aliases.get(key)
        if alias is None:
            alias = self._aliases[key] = len(self._aliases) + 1
            if tag not in self._devices.setdefault(device, []):
                self._devices[device].append(tag)
        return alias

    def _next_seq(self) -> int:
        seq = self._seq
        self._seq = (seq + 1) % 256
        return seq

    def _topic(self, kind: str, device: str | None = None) -> str:
        base = f"{spb.NAMESPACE}/{self._group}/{kind}/{self._node}"
        return base if device is None else f"{base}/{device}"

    # -- per connection ----------------------------------------------------------------------

    def will(self) -> tuple[str, bytes]:
        """A new connection's NDEATH (its last will), with a new bdSeq."""
        self._bd_seq = (self._bd_seq + 1) % 256
        death = spb.SpbPayload(
            int(self._clock() * 1000),
            None,
            [spb.SpbMetric("bdSeq", None, None, _UINT64, self._bd_seq)],
        )
        return self._topic("NDEATH"), spb.encode(death)

    def subscriptions(self) -> list[str]:
        """Rebirth requests for this node, and the primary host's STATE."""
        topics = [self._topic("NCMD"), self._topic("DCMD") + "/+"]
        if self._host_id is not None:
            topics.append(spb.state_topic(self._host_id))
        return topics

    def births(self) -> list[tuple[str, bytes]]:
        """NBIRTH (seq 0) and one DBIRTH per machine, in the order they must be published."""
        self.rebirth.clear()
        self.clear_to_send.set()
        self._seq = 0
        now = int(self._clock() * 1000)
        node = spb.SpbPayload(
            now,
            self._next_seq(),
            [
                spb.SpbMetric("bdSeq", None, now, _UINT64, self._bd_seq),
                spb.SpbMetric(REBIRTH, None, now, _BOOLEAN, False),
            ],
        )
        out = [(self._topic("NBIRTH"), spb.encode(node))]
        for device, tags in self._devices.items():
            metrics = []
            for tag in tags:
                key = (device, tag)
                last = self._last.get(key)
                if last is None:
                    # No value yet: declared as a number without one; a first value of
                    # another type asks for a rebirth that declares it properly.
                    datatype, value, quality, ts = _DOUBLE, None, "good", now
                else:
                    value, quality, ts = last
                    datatype = spb.datatype_of(value)
                self._declared[key] = datatype
                metrics.append(
                    spb.SpbMetric(
                        tag, self._aliases[key], ts, datatype, value,
                        is_null=value is None, quality=quality,
                    )
                )  # fmt: skip
            payload = spb.SpbPayload(now, self._next_seq(), metrics)
            out.append((self._topic("DBIRTH", device), spb.encode(payload)))
        return out

    # -- data --------------------------------------------------------------------------------

    def frame(self, device: str, batch: bytes, batch_seq: int, *, live: bool) -> tuple[str, bytes]:
        """The stored batch (wire JSON) as this machine's DDATA; backlog is history."""
        readings = json.loads(batch)["readings"]
        if device not in self._devices:
            self.ask_rebirth()  # a machine no DBIRTH declared yet
        metrics = []
        for r in readings:
            tag, value, quality = r["tag"], r["v"], r.get("q", "good")
            key = (device, tag)
            born = key in self._declared
            datatype = spb.datatype_of(value)
            if born and self._declared[key] != datatype:
                self.ask_rebirth()
            self._last[key] = (value, quality, r["ts"])
            metrics.append(
                spb.SpbMetric(
                    None if born else tag, self._alias(device, tag), r["ts"], datatype, value,
                    is_historical=not live, quality=quality,
                )
            )  # fmt: skip
        payload = spb.SpbPayload(
            int(self._clock() * 1000), self._next_seq(), metrics, uuid=f"ms:{self._src}:{batch_seq}"
        )
        return self._topic("DDATA", device), spb.encode(payload)

    # -- incoming ----------------------------------------------------------------------------

    def handle(self, topic: str, payload: bytes) -> bool:
        """A rebirth request or the host's STATE (True), or not ours (False)."""
        if self._host_id is not None and topic == spb.state_topic(self._host_id):
            self._state(payload)
            return True
        if topic.startswith((self._topic("NCMD"), self._topic("DCMD"))):
            try:
                metrics = spb.decode(payload).metrics
            except wire.PayloadError as exc:
                log.warning("ignoring an unreadable Sparkplug command on %s: %s", topic, exc)
                return True
            if any(m.name == REBIRTH and m.value is True for m in metrics):
                log.info("the Sparkplug host asked for a rebirth")
                self.ask_rebirth()
            return True
        return False

    def _state(self, payload: bytes) -> None:
        try:
            state = json.loads(payload)
            online, ts = state["online"], int(state.get("timestamp", 0))
        except (ValueError, KeyError, TypeError):
            log.warning("ignoring an unreadable STATE of host %s", self._host_id)
            return
        if ts < self._host_ts or not isinstance(online, bool):
            return  # an older certificate arriving late (Sparkplug 3.0 §5.12)
        self._host_ts = ts
        if online and not self.host_online.is_set():
            log.info("Sparkplug host %s is online: publishing births", self._host_id)
            self.host_online.set()
            self.ask_rebirth()
        elif not online and self.host_online.is_set():
            log.warning(
                "Sparkplug host %s is offline: keeping readings until it is back", self._host_id
            )
            self.host_online.clear()
            self.clear_to_send.clear()
