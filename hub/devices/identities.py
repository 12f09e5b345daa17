"""A broker identity and the access it gets by construction (pure).

A **device** publishes for the machines it is registered with, and nothing else: their
`telemetry`, `status`, `meta` and `events` topics; it may subscribe to its own receipts only. An
**agent** publishes for any machine of its site and line (its config may add machines), its own
status and command results, and subscribes to its own receipts and commands. Mosquitto's dynamic
security denies publishing and subscribing by default, so everything not listed here — other
machines, other publishers' receipts, commands, the hub's topics — is refused by the broker.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import wire

__all__ = [
    "HUB_ROLE",
    "MACHINE_KINDS",
    "Identity",
    "IdentityAuth",
    "IdentityKind",
    "acls",
    "hub_acls",
    "role_name",
]

IdentityKind = Literal["device", "agent"]
# How it logs in: a password the hub sets (shown once), or a client certificate from the site CA
# whose common name is its name (make-certs.sh --client), on the broker's certificate listener.
IdentityAuth = Literal["password", "certificate"]
# What a publisher may send about a machine (wire contract v1; `events` is reserved for it).
MACHINE_KINDS = ("telemetry", "status", "meta", "events")


@dataclass(frozen=True, slots=True)
class Identity:
    """Who connects: its broker user name, where it publishes, and its `src` (receipts)."""

    name: str
    kind: IdentityKind
    site: str
    line: str
    machines: tuple[str, ...] = ()  # a device's machines (an agent: any on its line)
    src: str = ""  # the publisher id in its payloads; default: the name
    disabled: bool = False
    created_at: int = 0
    created_by: str = ""
    notes: dict[str, str] = field(default_factory=dict)
    auth: IdentityAuth = "password"

    def __post_init__(self) -> None:
        for what, value in (("name", self.name), ("line", self.line)):
            wire.check_segment(what, value)
        wire.check_segment("site", self.site)
        if self.site in wire.RESERVED_SITES:
            raise ValueError(f"site {self.site!r} is reserved")
        for machine in self.machines:
            wire.check_segment("machine", machine)
        if self.kind == "device" and not self.machines:
            raise ValueError("a device publishes for at least one machine: give --machine")
        if not self.src:
            object.__setattr__(self, "src", self.name)
        wire.check_segment("src", self.src)


def role_name(identity: Identity) -> str:
    """The dynamic-security role holding this identity's ACL."""
    return f"ms-{identity.kind}-{identity.name}"


def _acl(acltype: str, topic: str) -> dict[str, object]:
    return {"acltype": acltype, "topic": topic, "allow": True}


def acls(identity: Identity) -> list[dict[str, object]]:
    """The dynamic-security ACL entries of its role (see module docstring)."""
    base = f"{wire.PREFIX}/{identity.site}/{identity.line}"
    machines = identity.machines if identity.kind == "device" else ("+",)
    out = [_acl("publishClientSend", f"{base}/{m}/{k}") for m in machines for k in MACHINE_KINDS]
    receipts = wire.receipt_topic(identity.src)
    out += [_acl("subscribeLiteral", receipts), _acl("publishClientReceive", receipts)]
    if identity.kind == "agent":
        out += [
            _acl("publishClientSend", wire.agent_status_topic(identity.name)),
            _acl("publishClientSend", wire.cmd_result_topic(identity.name)),
            _acl("subscribeLiteral", wire.cmd_topic(identity.name)),
            _acl("publishClientReceive", wire.cmd_topic(identity.name)),
            # The hub instances' drain budget (wire/drain.py), the pace of its backlog.
            _acl("subscribePattern", wire.DRAIN_FILTER),
            _acl("publishClientReceive", wire.DRAIN_FILTER),
            *_sparkplug_node(identity.site, identity.line),
        ]
    return out


def _sparkplug_node(group: str, node: str) -> list[dict[str, object]]:
    """An agent with `mqtt.output: sparkplug` and its default ids (group = site, edge node =
    line): its births, data and deaths, rebirth requests for it, and any host's STATE."""
    base = f"spBv1.0/{group}"
    reads = [f"{base}/NCMD/{node}", f"{base}/DCMD/{node}/+", "spBv1.0/STATE/+"]
    return [
        _acl("publishClientSend", f"{base}/+/{node}"),
        _acl("publishClientSend", f"{base}/+/{node}/+"),
        *(_acl(t, topic) for topic in reads for t in ("subscribePattern", "publishClientReceive")),
    ]


HUB_ROLE = "millstream-hub"


def hub_acls() -> list[dict[str, object]]:
    """The hub's own role: read every publisher's messages (shared subscriptions too), publish
    receipts and commands, and act as the Sparkplug primary host (docs/sparkplug.md)."""
    read = [f"{wire.PREFIX}/#", "spBv1.0/#"]
    out = [_acl(t, topic) for topic in read for t in ("subscribePattern", "publishClientReceive")]
    out += [_acl("subscribePattern", f"$share/+/{topic}") for topic in read]
    out += [
        _acl("publishClientSend", f"{wire.PREFIX}/#"),
        _acl("publishClientSend", "spBv1.0/STATE/#"),
        _acl("publishClientSend", "spBv1.0/+/NCMD/#"),
    ]
    return out
