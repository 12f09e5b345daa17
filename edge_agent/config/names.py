"""Names that become MQTT topic segments or keys: site, line, machine, agent id, tag, profile."""

from __future__ import annotations

from typing import Annotated

from pydantic import StringConstraints

from wire.limits import RESERVED_SITES, SEGMENT_PATTERN

__all__ = ["NAME_PATTERN", "RESERVED_SITES", "Name"]

# The wire contract owns the segment rule; checking it at load time means a config can never
# produce a topic the hub rejects later.
NAME_PATTERN = f"^{SEGMENT_PATTERN}$"

Name = Annotated[str, StringConstraints(pattern=NAME_PATTERN)]
