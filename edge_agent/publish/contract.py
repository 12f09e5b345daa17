"""What the publisher needs from the wire contract, as a Protocol (the runtime supplies `wire`)."""

from __future__ import annotations

import asyncio
from typing import Protocol

from edge_agent.buffer import Reading

__all__ = ["Commands", "Contract"]


class Contract(Protocol):
    """Topics and codecs of wire contract v1 for one agent (`src`)."""

    @property
    def status_topic(self) -> str:
        """`ms/v1/agents/{id}/status` (retained)."""
        ...

    @property
    def receipt_topic(self) -> str:
        """`ms/v1/receipts/{src}`."""
        ...

    def batch_topic(self, device: str) -> str:
        """Topic a batch of buffer lane `device` goes to: the machine's telemetry, or its events
        for an events lane (edge_agent/buffer/readings.py)."""
        ...

    def encode_batch(self, device: str, seq: int, readings: list[Reading]) -> bytes:
        """Telemetry batch payload."""
        ...

    def parse_receipt(self, payload: bytes) -> list[tuple[int, str]]:
        """(seq, payload digest) of each batch the hub stored; ValueError if not a receipt."""
        ...

    def offline_status(self) -> bytes:
        """Agent status payload saying `offline` (last will and clean shutdown)."""
        ...


class Commands(Protocol):
    """Where commands from the hub go and their results come from (edge_agent/commands)."""

    @property
    def topic(self) -> str:
        """`ms/v1/agents/{id}/cmd`."""
        ...

    @property
    def result_topic(self) -> str:
        """`ms/v1/agents/{id}/cmd/res`."""
        ...

    @property
    def results_ready(self) -> asyncio.Event:
        """Set when a result is waiting to be sent."""
        ...

    async def receive(self, payload: bytes) -> None:
        """Keep a command durably; its delivery is acknowledged only after this returns."""

    async def unsent(self) -> list[tuple[str, bytes]]:
        """(command id, result payload) not yet taken by the broker."""
        ...

    async def sent(self, command_id: str) -> None:
        """The broker took this result."""
