"""What the publisher needs from the wire contract, as a Protocol (the runtime supplies `wire`)."""

from __future__ import annotations

from typing import Protocol

from edge_agent.buffer import Reading

__all__ = ["Contract"]


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

    def telemetry_topic(self, device: str) -> str:
        """Topic of the machine behind `device`."""
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
