"""The publisher's `Contract` filled in with the `wire` package (never re-implemented here)."""

from __future__ import annotations

import time

import wire
from edge_agent.buffer import Reading
from edge_agent.buffer.readings import lane_machine

__all__ = ["WireContract"]


class WireContract:
    """Topics and codecs of wire contract v1 for one agent on one site/line."""

    def __init__(self, agent_id: str, site: str, line: str) -> None:
        self.agent_id = agent_id
        self.site = site
        self.line = line
        self.status_topic = wire.agent_status_topic(agent_id)
        self.receipt_topic = wire.receipt_topic(agent_id)
        self._topics: dict[str, str] = {}

    def batch_topic(self, device: str) -> str:
        """Device names are machine names (config: `devices[].machine`); a machine's events
        lane goes to its events topic."""
        topic = self._topics.get(device)
        if topic is None:
            machine, events = lane_machine(device)
            make = wire.events_topic if events else wire.telemetry_topic
            topic = self._topics[device] = make(self.site, self.line, machine)
        return topic

    def encode_batch(self, device: str, seq: int, readings: list[Reading]) -> bytes:
        """Telemetry batch payload, validated by wire exactly as the hub will."""
        return wire.encode_telemetry(self.agent_id, seq, readings)

    def parse_receipt(self, payload: bytes) -> list[tuple[int, str]]:
        """(seq, digest) of each batch a receipt names (wire.PayloadError is a ValueError).

        Its seq ranges alone delete nothing: only a digest proves the hub stored our payload.
        """
        return list(wire.parse_receipt(self.receipt_topic, payload).sha256)

    def offline_status(self) -> bytes:
        """The last will and the clean-shutdown status."""
        # The will is fixed at connect time; its ts says when this connection began.
        return wire.encode_agent_status("offline", int(time.time() * 1000))
