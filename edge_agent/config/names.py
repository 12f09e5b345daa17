"""Names that become MQTT topic segments or keys: site, line, machine, agent id, tag, profile."""

from __future__ import annotations

from typing import Annotated

from pydantic import StringConstraints

__all__ = ["NAME_PATTERN", "RESERVED_SITES", "Name"]

# Wire contract v1 (ARCHITECTURE.md): topic segments match this, so names are checked at load
# time instead of producing topics the hub rejects later.
NAME_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"

# `ms/v1/agents/...` and `ms/v1/receipts/...` share the site position of the topic tree.
RESERVED_SITES = frozenset({"agents", "receipts"})

Name = Annotated[str, StringConstraints(pattern=NAME_PATTERN)]
