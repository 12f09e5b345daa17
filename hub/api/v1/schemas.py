"""Request and response bodies of `/api/v1` (the OpenAPI document is generated from these)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

import wire
from wire.commands import MAX_ACK_COMMENT_CHARS

__all__ = [
    "AckIn",
    "AcknowledgeIn",
    "AgentOut",
    "AlertOut",
    "BucketOut",
    "CallIn",
    "CommandIn",
    "CommandOut",
    "CompletenessOut",
    "DeadLetterOut",
    "DeviceOut",
    "HistoryOut",
    "LatestOut",
    "LoginIn",
    "MachineOut",
    "MeOut",
    "MinuteOut",
    "RawPointOut",
    "RefreshIn",
    "RuleOut",
    "SeriesOut",
    "ShelfIn",
    "ShelfOut",
    "TokenOut",
    "UserOut",
    "WriteIn",
]

Name = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.@-]{1,64}$")]
Value = float | bool | str | None


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LoginIn(_In):
    """User name and password."""

    username: Name
    password: Annotated[str, Field(min_length=1, max_length=1024)]


class RefreshIn(_In):
    """A refresh token from login or an earlier refresh."""

    refresh_token: Annotated[str, Field(min_length=1, max_length=256)]


class TokenOut(BaseModel):
    """A short-lived access token and the next refresh token (the old one is now spent)."""

    access_token: str
    refresh_token: str
    token_type: Literal["bearer"] = "bearer"  # noqa: S105 -- OAuth 2 token type
    expires_in: int


class MeOut(BaseModel):
    """Who the credentials belong to."""

    subject: str
    role: str
    kind: str


class UserOut(BaseModel):
    """An API user (never the hash)."""

    name: str
    role: str
    disabled: bool


class MachineOut(BaseModel):
    """A machine, judged from its status, its agent's state and its newest value."""

    site: str
    line: str
    machine: str
    state: Literal["online", "offline", "stale", "faulted", "unknown"]
    reason: str  # why, in words: "agent line3-pc is offline", "no reading for 75 s", …
    status: str | None = None  # what its own status topic says (None if it never published)
    detail: str | None = None  # that status's detail
    agent: str | None = None  # the agent that polls it (from agent status `devices`)
    agent_state: str | None = None  # that agent's last reported state
    series: int
    last_seen_ms: int | None
    last_reading_ms: int | None


class SeriesOut(BaseModel):
    """A series (one tag of one machine); unit, description and plausible range (its device
    profile's `limits`, which alerts watch) from the machine's meta."""

    id: int
    site: str
    line: str
    machine: str
    tag: str
    unit: str | None = None
    description: str | None = None
    limit_low: float | None = None
    limit_high: float | None = None
    writable: bool = Field(False, description="operators may write it (docs/commands.md)")
    write_min: float | None = None
    write_max: float | None = None


class LatestOut(BaseModel):
    """The newest reading of one series."""

    series_id: int
    tag: str
    ts: int
    v: Value
    q: str


class RawPointOut(BaseModel):
    """One stored reading."""

    ts: int
    v: Value
    q: str


class BucketOut(BaseModel):
    """One downsampled bucket: [ts, ts + bucket_ms)."""

    ts: int
    min: float
    max: float
    avg: float
    count: int
    last: float


class HistoryOut(BaseModel):
    """History of one series: `raw` points, or `buckets` of `bucket_ms`."""

    series: SeriesOut
    from_ms: int
    to_ms: int
    resolution: Literal["raw", "minute", "hour"]
    bucket_ms: int | None
    truncated: bool = False
    raw: list[RawPointOut] = []
    buckets: list[BucketOut] = []


class AgentOut(BaseModel):
    """An agent's last reported health."""

    agent_id: str
    state: str
    status_ts: int | None
    last_seen_ms: int
    version: str | None
    buffer_depth: int | None
    buffer_age_ms: int | None
    dropped: int | None
    publish_rate: float | None
    drain_eta_s: float | None
    poll_errors: dict[str, int]
    # Remote configuration: the newest version the agent kept (None: its own file), and the
    # newest pushed with what became of it (None: nothing was ever pushed).
    config_version: int | None = None
    config_latest: int | None = None
    config_latest_status: str | None = None


class DeviceOut(BaseModel):
    """A device polled by an agent, with its poll error count."""

    agent_id: str
    device: str
    poll_errors: int
    agent_state: str
    last_seen_ms: int


class MinuteOut(BaseModel):
    """One minute of one machine."""

    minute: int
    stored: int
    expected: int
    ratio: float
    reason: str | None = None  # why readings are missing ("device offline: …"), when known


class OutageOut(BaseModel):
    """An interval in which the machine's device or agent was offline (`to_ms` null: ongoing)."""

    kind: Literal["device", "agent", "drop"]
    reason: str
    from_ms: int
    to_ms: int | None


class CompletenessOut(BaseModel):
    """Readings stored vs expected per minute, and the outages that explain gaps (docs/api.md)."""

    machine: str
    from_ms: int
    to_ms: int
    # The machine's median stored minute (the estimate used where nothing else says).
    expected_per_minute: int
    # What its schedule asks per minute (tags sent on every poll), if its agent declared one.
    scheduled_per_minute: float | None = None
    minutes: list[MinuteOut]
    outages: list[OutageOut] = []
    agents_dropped: dict[str, int]


class DeadLetterOut(BaseModel):
    """A refused message."""

    id: int
    received_at: int
    topic: str
    payload_size: int
    payload_preview: str
    reason: str
    message: str
    src: str | None

    model_config = ConfigDict(extra="ignore")

    @classmethod
    def of(cls, row: dict[str, Any]) -> DeadLetterOut:
        """From a query row."""
        return cls.model_validate(row)


# Text stored as is in PostgreSQL, which refuses NUL in text: refused here as a 422, not a 500.
Text = Annotated[str, Field(pattern=r"^[^\x00]*$")]


class AckIn(_In):
    """Why the operator acknowledges (shown in the history and sent to notifiers)."""

    comment: Annotated[Text, Field(max_length=2000)] = ""


class AlertOut(BaseModel):
    """An alert occurrence: what fired, where, and where it stands."""

    id: str
    rule: str
    kind: str
    severity: str
    state: Literal["active", "acknowledged", "cleared"]
    site: str
    line: str
    machine: str
    tag: str
    value: float | None
    ts: int = Field(description="when it became active (epoch ms)")
    detail: str
    found_late: bool = Field(description="fired by readings that arrived late (backlog): history")
    acked_ms: int | None
    acked_by: str | None
    ack_comment: str | None
    cleared_ms: int | None
    cleared_value: float | None

    @classmethod
    def of(cls, row: dict[str, Any]) -> AlertOut:
        """From a query row."""
        return cls.model_validate({**row, "ts": row["active_ms"], "id": str(row["id"]),
                                   "found_late": bool(row["found_late"])})  # fmt: skip


class RuleOut(BaseModel):
    """An alert rule as in the config (docs/alerts.md), with where it comes from."""

    rule: dict[str, Any]
    source: Literal["config", "api"]
    updated_by: str | None = None
    updated_ms: int | None = None

    @classmethod
    def of(cls, rule: Any, source: Literal["config", "api"], who: str | None = None,
           ms: int | None = None) -> RuleOut:  # fmt: skip
        """From a `hub.alerts.rules.Rule`."""
        body = rule.model_dump(mode="json", by_alias=True, exclude_defaults=True)
        body["name"], body["kind"] = rule.name, rule.kind
        return cls(rule=body, source=source, updated_by=who, updated_ms=ms)


_Glob = Annotated[str | None, Field(max_length=200, pattern=r"^[^\x00-\x1f]*$")]


class ShelfIn(_In):
    """What to silence (globs; leave out to match any), for how long, and why."""

    rule: _Glob = None
    site: _Glob = None
    line: _Glob = None
    machine: _Glob = None
    for_: Annotated[str | None, Field(alias="for", max_length=20)] = None
    until: Annotated[int | None, Field(ge=0, le=2**53)] = None
    reason: Annotated[Text, Field(min_length=1, max_length=2000)]


class ShelfOut(BaseModel):
    """A shelf in force."""

    id: int
    rule: str | None
    site: str | None
    line: str | None
    machine: str | None
    until_ms: int
    reason: str
    by: str
    created_ms: int

    @classmethod
    def of(cls, shelf: Any) -> ShelfOut:
        """From a `hub.alerts.manage.Shelf`."""
        return cls(**{f: getattr(shelf, f) for f in cls.model_fields})


# A tag's value as the wire carries it: bool first (true must not become 1), NUL-free text.
WireValue = bool | int | float | Text


class CommandIn(_In):
    """How long to wait for the agent's answer, and after when it must not run the command."""

    wait: float = Field(5.0, ge=0, le=30, description="seconds to wait for the agent's answer")
    expires_in: float = Field(
        60.0, ge=1, le=3600, description="seconds after which the agent must not run it"
    )


class WriteIn(CommandIn):
    """A value to write to a machine's tag, in engineering units."""

    value: WireValue


class CallIn(CommandIn):
    """The arguments of a method call, in order (engineering values, as the wire carries)."""

    args: list[WireValue] = Field(default_factory=list, max_length=32)


class AcknowledgeIn(CommandIn):
    """A machine event to acknowledge — an OPC-UA alarm condition's occurrence, by the `id`
    `GET /events` shows — and the operator's comment."""

    site: Annotated[str, Field(pattern=f"^{wire.SEGMENT_PATTERN}$")]
    line: Annotated[str, Field(pattern=f"^{wire.SEGMENT_PATTERN}$")]
    machine: Annotated[str, Field(pattern=f"^{wire.SEGMENT_PATTERN}$")]
    id: Annotated[str, Field(pattern=f"^{wire.EVENT_ID_PATTERN}$")]
    comment: Annotated[Text, Field(max_length=MAX_ACK_COMMENT_CHARS)] = ""


class ConfigPushIn(_In):
    """A new configuration for an agent: its agent.yaml and the profiles beside it, by relative
    path (what `millstream-hub agents config push` gathers). No secret: the agent keeps its own
    broker password."""

    files: dict[str, str] = Field(description="relative path → file text; agent.yaml required")
    comment: str = Field("", max_length=500)
    rollback_after: float = Field(
        60.0, ge=5, le=3600,
        description="seconds the agent gives the new version to bring back every device that "
        "was online, and the broker, before it goes back to the previous one by itself",
    )  # fmt: skip


class ConfigRollbackIn(_In):
    """Which kept version to return to (default: the one kept before the current one)."""

    to: int | None = Field(None, ge=1, le=2**31 - 1)
    rollback_after: float = Field(60.0, ge=5, le=3600)


class ConfigVersionOut(BaseModel):
    """One version of an agent's configuration and what became of it (`status` is its
    command's: `done` kept, `failed` rolled back, `refused` invalid, `pending` no answer yet)."""

    agent_id: str
    version: int
    comment: str
    pushed_by: str
    pushed_at: int
    command_id: str
    status: Literal["pending", "done", "refused", "failed", "expired"]
    detail: str | None
    answered_at: int | None
    files: dict[str, str] | None = None


class AgentConfigOut(BaseModel):
    """The configuration an agent runs: the newest version it kept, or its own file (`version`
    null, `config` null), and the newest version pushed."""

    agent_id: str
    version: int | None
    config: ConfigVersionOut | None
    latest: ConfigVersionOut | None


class CommandOut(BaseModel):
    """A command and what its agent answered (`status` `pending` until it does)."""

    id: str
    kind: str
    agent_id: str
    site: str
    line: str
    machine: str
    tag: str
    value: Any
    issued_by: str
    issued_at: int
    expires_at: int
    status: Literal["pending", "done", "refused", "failed", "expired"]
    detail: str | None
    previous: Any
    read_back: Any
    finished_at: int | None
    answered_at: int | None


class IdentityIn(_In):
    """A broker identity to make (docs/deploy.md "Broker identities with dynamic security")."""

    name: str = Field(description="broker user name; also its `src` unless `src` is given")
    kind: Literal["device", "agent"] = "device"
    site: str
    line: str
    machines: list[str] = Field(
        default_factory=list, description="a device's machines (an agent: any of its line)"
    )
    src: str = ""
    auth: Literal["password", "certificate"] = Field(
        "password",
        description="certificate: it logs in with a client certificate from the site CA "
        "(make-certs.sh --client NAME) on the broker's port 8884, and gets no password",
    )


class IdentityOut(BaseModel):
    """What the hub knows of an identity (the broker keeps the password, hashed)."""

    name: str
    kind: str
    site: str
    line: str
    machines: list[str]
    src: str
    disabled: bool
    created_at: int
    created_by: str
    auth: str = "password"  # or "certificate" (docs/deploy.md)


class IdentityPasswordOut(BaseModel):
    """A new identity's or a rotated password: shown in this answer only (none for an identity
    that logs in with a certificate)."""

    name: str
    password: str | None
