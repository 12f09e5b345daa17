"""Server certificate pinning: trust on first use, refuse a changed one until a human accepts it."""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass
from pathlib import Path

from edge_agent.drivers.opcua.certs import thumbprints

__all__ = ["PinDecision", "PinStore", "decide"]


class PinDecision(enum.Enum):
    """Outcome of comparing a presented server certificate with the pinned one."""

    FIRST_USE = "first_use"
    MATCH = "match"
    CHANGED = "changed"


def decide(pinned_sha256: str | None, presented_sha256: str) -> PinDecision:
    """Pure rule: nothing pinned ⇒ first use; same thumbprint ⇒ match; else changed."""
    if pinned_sha256 is None:
        return PinDecision.FIRST_USE
    return PinDecision.MATCH if pinned_sha256 == presented_sha256 else PinDecision.CHANGED


@dataclass(frozen=True, slots=True)
class PinStore:
    """One JSON file plus the DER certificate per device under `state_dir/opcua/trusted`."""

    state_dir: Path

    @property
    def folder(self) -> Path:
        """Where pinned certificates live."""
        return self.state_dir / "opcua" / "trusted"

    def pinned(self, device: str) -> str | None:
        """SHA-256 thumbprint pinned for `device`, or None before first use."""
        path = self.folder / f"{device}.json"
        if not path.is_file():
            return None
        return str(json.loads(path.read_text())["sha256"])

    def pin(self, device: str, der: bytes, url: str) -> str:
        """Pin `der` for `device` (replacing any previous pin); returns its SHA-256 thumbprint."""
        sha256, sha1 = thumbprints(der)
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / f"{device}.der").write_bytes(der)
        record = {"device": device, "url": url, "sha256": sha256, "sha1": sha1}
        tmp = self.folder / f"{device}.json.tmp"
        tmp.write_text(json.dumps(record, indent=2) + "\n")
        # Atomic replace: a crash mid-write must not unpin a device (it would re-trust blindly).
        tmp.replace(self.folder / f"{device}.json")
        return sha256
