"""The `alerts:` section of the hub config: notifiers and rules (docs/alerts.md).

Plain validated data; the engine (`hub.alerts.engine`) compiles it. Durations are written like
`5s`, `2m`, `1h`, `500ms` (or a bare number of seconds) and held as milliseconds.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    SecretStr,
    field_validator,
    model_validator,
)

__all__ = [
    "AlertsConfig",
    "DurationMs",
    "EmailNotifier",
    "EventMatch",
    "KafkaNotifier",
    "LimitsPolicy",
    "Match",
    "MqttNotifier",
    "Notifier",
    "Rule",
    "Severity",
    "SmtpConfig",
    "WebhookNotifier",
    "format_duration",
    "parse_duration_ms",
]

Severity = Literal["info", "warning", "critical"]
RuleKind = Literal["threshold", "rate", "zscore", "stale", "offline", "quality", "edge", "event"]

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|min|h|d)?\s*$")
_UNIT_MS = {"ms": 1, "s": 1000, None: 1000, "m": 60_000, "min": 60_000, "h": 3_600_000,
            "d": 86_400_000}  # fmt: skip
_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"


def parse_duration_ms(value: object) -> int:
    """`5s` → 5000; `1h` → 3600000; `250ms` → 250; a bare number is seconds."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 5s, 2m or 1h")  # noqa: TRY004
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError("a duration cannot be negative")
        return round(value * 1000)
    found = _DURATION.match(str(value))
    if found is None:
        raise ValueError("expected a duration such as 500ms, 5s, 2m, 1h or 1d")
    return round(float(found.group(1)) * _UNIT_MS[found.group(2)])


def format_duration(ms: int) -> str:
    """The shortest way to write a duration that `parse_duration_ms` reads back exactly."""
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        if ms and ms % size == 0:
            return f"{ms // size}{unit}"
    return f"{ms}ms"


# Held as milliseconds; written back (JSON, the API) as text such as `5s`, never as a bare
# number, which would read as seconds.
DurationMs = Annotated[
    int,
    BeforeValidator(parse_duration_ms),
    PlainSerializer(format_duration, return_type=str, when_used="json"),
]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Match(_Frozen):
    """Which series a rule watches: shell-style globs per name part (`press-*`, `*current*`)."""

    site: str = "*"
    line: str = "*"
    machine: str = "*"
    tag: str = "*"


class EventMatch(_Frozen):
    """Which machine events an `event` rule fires on (docs/events.md): at least this severity
    (OPC UA's 1-1000), and shell-style globs on the event's type and source."""

    min_severity: int = Field(default=1, ge=1, le=1000)
    type: str = "*"
    source: str = "*"


class WebhookNotifier(_Frozen):
    """JSON POST of each transition, signed with HMAC-SHA256 of the body."""

    name: str = Field(pattern=_NAME)
    kind: Literal["webhook"]
    url: str = Field(pattern=r"^https?://")
    # The signing secret: a file holding it (kept out of the config, like every secret).
    secret_file: Path | None = None
    timeout_s: float = Field(default=5.0, gt=0, le=60)

    def secret(self) -> bytes | None:
        """The signing key, read when needed (None: unsigned)."""
        if self.secret_file is None:
            return None
        return self.secret_file.read_text(encoding="utf-8").strip().encode()


class EmailNotifier(_Frozen):
    """One message per transition to `to`, through the `smtp:` section's server."""

    name: str = Field(pattern=_NAME)
    kind: Literal["email"]
    to: tuple[str, ...] = Field(min_length=1)


class MqttNotifier(_Frozen):
    """Publishes to `ms/v1/alerts/{site}/{line}/{machine}` on the hub's broker."""

    name: str = Field(pattern=_NAME)
    kind: Literal["mqtt"]


class KafkaNotifier(_Frozen):
    """Writes each transition to the `millstream.alerts` topic through the outbox."""

    name: str = Field(pattern=_NAME)
    kind: Literal["kafka"]


Notifier = Annotated[
    WebhookNotifier | EmailNotifier | MqttNotifier | KafkaNotifier, Field(discriminator="kind")
]


class SmtpConfig(_Frozen):
    """The mail server email notifiers send through."""

    host: str
    port: int = Field(default=587, ge=1, le=65535)
    starttls: bool = True
    username: str | None = None
    password_file: Path | None = None
    sender: str = "millstream@localhost"
    timeout_s: float = Field(default=10.0, gt=0, le=120)

    def password(self) -> SecretStr | None:
        """The SMTP password from its file (None: no authentication)."""
        if self.password_file is None:
            return None
        return SecretStr(self.password_file.read_text(encoding="utf-8").strip())


class Rule(_Frozen):
    """One alert rule. Which fields apply depends on `kind` (checked below)."""

    name: str = Field(pattern=_NAME)
    kind: RuleKind
    match: Match = Match()
    severity: Severity = "warning"
    notify: tuple[str, ...] = ()
    # How long the condition must hold before the alert fires (0: at once).
    for_ms: DurationMs = Field(default=0, alias="for")
    # threshold / rate: limits, and how far back past them a value must come to clear.
    above: float | None = None
    below: float | None = None
    hysteresis: float = Field(default=0.0, ge=0)
    # rate: change per `per` over `window`; zscore: the rolling window of mean and deviation.
    per: Literal["s", "min"] = "s"
    window: DurationMs | None = None
    # zscore: how many standard deviations, and samples seen before it may fire.
    z: float = Field(default=4.0, gt=0)
    min_samples: int = Field(default=60, ge=2)
    # zscore: the machine's own fault flags (globs of its boolean tags): while one is true, and
    # for `FAULT_GRACE` after, the machine says what is wrong and its signals are not judged.
    quiet_while: tuple[str, ...] = ("*jam*", "*fault*")
    # edge: the oldest unsent reading older than this (dropping readings always fires).
    backlog_age: DurationMs | None = None
    # event: which machine events fire it (`kind` may be left out when this is given).
    event: EventMatch | None = None

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    @model_validator(mode="before")
    @classmethod
    def _event_implies_kind(cls, data: object) -> object:
        if isinstance(data, dict) and "kind" not in data and data.get("event") is not None:
            return {**data, "kind": "event"}
        return data

    @model_validator(mode="after")
    def _fields_of_kind(self) -> Rule:
        kind = self.kind
        if kind == "event":
            self._event_fields()
        elif self.event is not None:
            raise ValueError(
                f"`event` belongs to event rules; write `kind: event` to match machine events,"
                f" or remove `event` from this {kind} rule"
            )
        if kind == "threshold" and self.above is None and self.below is None:
            raise ValueError("a threshold rule needs `above` and/or `below`")
        if (
            kind == "threshold"
            and self.above is not None
            and self.below is not None
            and self.below >= self.above
        ):
            raise ValueError("`below` must be lower than `above`")
        if kind == "rate" and (self.above is None or self.window is None):
            raise ValueError("a rate rule needs `above` (change per `per`) and `window`")
        if kind != "zscore" and "quiet_while" in self.model_fields_set:
            raise ValueError("`quiet_while` belongs to zscore rules")
        if kind == "zscore" and self.window is None:
            object.__setattr__(self, "window", 3_600_000)
        return self

    def _event_fields(self) -> None:
        if self.event is None:
            raise ValueError(
                "an event rule needs `event` (which machine events fire it),"
                " e.g. event: {min_severity: 600, type: alarm, source: guard_open}"
            )
        unused = [
            name
            for name, given in (
                ("above", self.above is not None), ("below", self.below is not None),
                ("window", self.window is not None), ("for", self.for_ms != 0),
                ("backlog_age", self.backlog_age is not None),
            )
            if given
        ]  # fmt: skip
        if unused:
            raise ValueError(
                f"{', '.join(f'`{n}`' for n in unused)} do not apply to an event rule (it fires"
                " when the machine raises a matching event); remove them"
            )
        if self.match.tag != "*":
            raise ValueError(
                "an event rule matches the event's source with `event: {source: ...}`,"
                " not `match: {tag: ...}`; move the pattern there"
            )


class LimitsPolicy(_Frozen):
    """How device profiles' `limits` become threshold alerts (docs/alerts.md "Profile limits")."""

    enabled: bool = True
    severity: Severity = "warning"
    notify: tuple[str, ...] = ()
    for_ms: DurationMs = Field(default=0, alias="for")
    hysteresis: float = Field(default=0.0, ge=0)

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


class AlertsConfig(_Frozen):
    """The `alerts:` section: notifiers by name, and the rules that use them."""

    notifiers: tuple[Notifier, ...] = ()
    rules: tuple[Rule, ...] = ()
    limits: LimitsPolicy = LimitsPolicy()
    # A file of further notifiers and rules (same shape), appended to these; relative to the
    # config file. Read by `hub.config.load_config`.
    file: Path | None = None
    # Readings that reach the hub this long after their timestamp are history, not news: a
    # crossing among them is recorded as found late and notifies nobody.
    late_after: DurationMs = 60_000
    # How long after its transaction began a committed batch waits before it is evaluated, so
    # that a machine's batches committed out of order by two hub instances are put back in
    # time order first (hub/alerts/evaluator.py). Adds to the crossing → notification time.
    reorder: DurationMs = 300  # ms; written `300ms`, `1s`

    @field_validator("rules")
    @classmethod
    def _unique_rules(cls, rules: tuple[Rule, ...]) -> tuple[Rule, ...]:
        _unique([r.name for r in rules], "rule")
        return rules

    @model_validator(mode="after")
    def _known_notifiers(self) -> AlertsConfig:
        names = [n.name for n in self.notifiers]
        _unique(names, "notifier")
        users = [(f"rule {r.name!r}", r.notify) for r in self.rules]
        users.append(("limits", self.limits.notify))
        for who, notify in users:
            missing = [n for n in notify if n not in names]
            if missing:
                raise ValueError(
                    f"{who} notifies {', '.join(missing)}, which no notifier is"
                    f" named; notifiers: {', '.join(names) or 'none'}"
                )
        return self


def _unique(names: list[str], what: str) -> None:
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise ValueError(f"two {what}s are named {name!r}; names must be unique")
        seen.add(name)
