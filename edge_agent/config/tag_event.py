"""`event:` on a profile tag: an alarm bit or a code register that turns its changes into machine
events (docs/events.md "From a Modbus alarm bit"), validated with the technician's hint."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

import wire
from edge_agent.config.issues import Issue
from wire.limits import MAX_EVENT_LABEL_CHARS

__all__ = ["EDGE_TYPES", "TagEvent", "event_issues"]

# What may be watched for changes: a bit, or an integer code (a float or a text changes all the
# time or means nothing as an edge).
EDGE_TYPES = frozenset({"bool", "int16", "uint16", "int32", "uint32", "int64", "uint64"})

_Text = Annotated[str, Field(max_length=wire.MAX_STRING_BYTES // 4)]


class TagEvent(BaseModel):
    """Which changes of the tag are events, and how they read."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # rising: false → true (an alarm bit set); falling: true → false; change: any new value
    # (a code register: each new code is an event).
    on: Literal["rising", "falling", "change"]
    severity: int = Field(500, ge=1, le=1000)  # OPC-UA's 1-1000
    # The text of the event; for a code register, a map code → text ("{value}" for others).
    message: _Text | dict[int, _Text] = ""
    type: str = Field("alarm", min_length=1, max_length=MAX_EVENT_LABEL_CHARS)

    def text(self, value: object) -> str:
        """The event's message for the tag's new value."""
        if isinstance(self.message, dict):
            if isinstance(value, int) and value in self.message:
                return self.message[value]
            return f"code {value}"
        return self.message


def event_issues(event: TagEvent | None, type_: str) -> list[Issue]:
    """What is wrong with `event:` on a tag of type `type_` (none when it may be watched)."""
    if event is None:
        return []
    issues = []
    if type_ not in EDGE_TYPES:
        issues.append(
            Issue(
                ("event",),
                f"a {type_} tag cannot raise events: its value is not a bit or a code",
                "put event: on the alarm bit (type: bool, or bit: N of a register) or on an "
                "integer code register",
            )
        )
    elif event.on != "change" and type_ != "bool":
        issues.append(
            Issue(
                ("event", "on"),
                f"{event.on} is an edge of a bit, and this tag is a {type_}",
                "use on: change for a code register, or read the alarm bit (type: bool or bit: N)",
                event.on,
            )
        )
    if isinstance(event.message, dict) and type_ == "bool":
        issues.append(
            Issue(
                ("event", "message"),
                "a map of codes to texts is for a code register, and this tag is a bit",
                "give one text, e.g. message: Guard door open",
            )
        )
    return issues
