"""The edge agent's exceptions, grouped by what the caller does next (house style §6).

```
MillstreamAgentError            root: catch this to catch anything the agent raises on purpose
├── ConfigError                 fatal: print every problem, exit 1, nothing runs
├── DeviceUnavailable           retry the device with exponential backoff and jitter
├── DecodeError                 mark that one point `bad`, keep polling the rest
├── DiskFull                    the buffer cannot write now: keep running, retry; it recovers
├── PublishError                keep the batch buffered, publish it again later
├── WriteRefused                a command's write is not allowed: answer `refused`, write nothing
└── WriteFailed                 the device did not take a write (refused it, or failed): answer
                                `failed`; never retried by itself
```

Drivers and the publisher map their libraries' exceptions to these at the boundary and chain
the original (`raise DeviceUnavailable(...) from exc`), so callers never import pymodbus,
asyncua or paho just to handle a failure.
"""

from __future__ import annotations

from millstream_common.config import ConfigProblem

__all__ = [
    "ConfigError",
    "ConfigProblem",
    "DecodeError",
    "DeviceUnavailable",
    "DiskFull",
    "MillstreamAgentError",
    "PublishError",
    "WriteFailed",
    "WriteRefused",
]


class MillstreamAgentError(Exception):
    """Root of every exception the edge agent raises on purpose."""


class ConfigError(MillstreamAgentError):
    """Fatal: the configuration cannot be used; carries every problem found, not just the first."""

    def __init__(self, problems: list[ConfigProblem] | tuple[ConfigProblem, ...]) -> None:
        self.problems: tuple[ConfigProblem, ...] = tuple(problems)
        count = len(self.problems)
        head = f"{count} configuration problem{'s' if count != 1 else ''}"
        super().__init__("\n".join([head, *(f"  {p}" for p in self.problems)]))


class DeviceUnavailable(MillstreamAgentError):  # noqa: N818 -- names the state, as callers say it
    """The device did not answer usefully (refused, timed out, dropped); retry with backoff.

    `hint` is what a technician checks next; the CLI prints it under the error. It stays out of
    the message, which the agent's log, status and the dashboard show as the reason.
    """

    def __init__(self, message: str, *, device: str = "", hint: str = "") -> None:
        self.device = device
        self.hint = hint
        self.reason = message  # without the device name: for places that already show it
        super().__init__(f"{device}: {message}" if device else message)


class DiskFull(MillstreamAgentError):  # noqa: N818 -- names the state, as callers say it
    """The buffer's disk has no room for this write; the buffer goes on and recovers by itself."""


class DecodeError(MillstreamAgentError):
    """A point's raw value could not be turned into a reading; mark that point bad."""

    def __init__(self, message: str, *, point: str = "") -> None:
        self.point = point
        super().__init__(f"{point}: {message}" if point else message)


class PublishError(MillstreamAgentError):
    """A batch did not reach the broker; it stays in the buffer and is published again later."""


class WriteRefused(MillstreamAgentError):  # noqa: N818 -- names what the agent did
    """A write that the profile does not allow (not writable, out of min/max, wrong type);
    nothing was sent to the device. The message says why, for the command's result."""


class WriteFailed(MillstreamAgentError):  # noqa: N818 -- names what the device did
    """The device answered a write with a refusal of its own (OPC-UA BadNotWritable,
    BadTypeMismatch, …); the message names it, for the command's result."""
