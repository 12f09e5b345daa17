"""Hub configuration: one YAML file, every field overridable by `MILLSTREAM_…` variables.

Environment overrides use `__` between nesting levels and are parsed as YAML scalars:
`MILLSTREAM_STORAGE=postgresql://…`, `MILLSTREAM_MQTT__URL=mqtts://broker:8883`,
`MILLSTREAM_FLUSH_MS=100`. Variables whose first part names no config section are left alone
(a password variable named by `mqtt.password_env` may share the prefix). Loading reports every
problem at once with file, path and a hint.
"""

from __future__ import annotations

import os
import string
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from hub.alerts.rules import AlertsConfig, SmtpConfig
from hub.errors import ConfigError, ConfigProblem
from millstream_common.config import ENV_PREFIX, apply_env_overrides
from millstream_common.tracing import TracingConfig
from wire.limits import SEGMENT_PATTERN

__all__ = [
    "ENV_PREFIX",
    "AlertsConfig",
    "ApiConfig",
    "HttpConfig",
    "HubConfig",
    "KafkaConfig",
    "MqttConfig",
    "RedisConfig",
    "SmtpConfig",
    "TlsConfig",
    "load_config",
]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class TlsConfig(_Frozen):
    """Broker TLS: CA to trust, and a client certificate when the broker requires one."""

    ca: Path | None = None
    cert: Path | None = None
    key: Path | None = None


class MqttConfig(_Frozen):
    """How the hub reaches the broker and which session it resumes."""

    url: str = "mqtt://127.0.0.1:1883"
    username: str | None = None
    password_env: str | None = None
    password_file: Path | None = None
    tls: TlsConfig | None = None
    # The broker keeps unacknowledged messages per session; a stable id lets a restarted hub
    # resume its own session (and get its in-flight messages redelivered). None = hostname based.
    client_id: str | None = None
    share_group: str = Field(default="hub", pattern=f"^{SEGMENT_PATTERN}$")
    # mqttv311 is for brokers without MQTT v5 (the demo's embedded broker): no shared subscription
    # (run one instance), no Receive Maximum; the session persists through clean_session=false.
    protocol: Literal["mqttv5", "mqttv311"] = "mqttv5"
    # MQTT v5 Receive Maximum: unacknowledged messages the broker may have in flight to us. It is
    # the hub's bounded in-memory window when storage is slow (each message ≤ 1 MiB by contract).
    receive_maximum: int = Field(default=256, ge=1, le=65535)
    session_expiry_s: int = Field(default=7 * 24 * 3600, ge=0)
    # On a planned stop (scale-down, a temporary instance), leave the share group and end the
    # broker session instead of keeping it for a restart (docs/hub.md "Scaling out").
    retire_on_stop: bool = False
    keepalive_s: int = Field(default=30, ge=5, le=3600)

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in {"mqtt", "mqtts"} or not parts.hostname:
            raise ValueError("expected mqtt://host:port or mqtts://host:port")
        return value

    @property
    def host(self) -> str:
        """Broker host name from the URL."""
        return urlsplit(self.url).hostname or "127.0.0.1"

    @property
    def port(self) -> int:
        """Broker port from the URL (1883, or 8883 for mqtts)."""
        parts = urlsplit(self.url)
        return parts.port or (8883 if parts.scheme == "mqtts" else 1883)

    @property
    def use_tls(self) -> bool:
        """True when the URL scheme or a tls section asks for TLS."""
        return urlsplit(self.url).scheme == "mqtts" or self.tls is not None

    def password(self) -> str | None:
        """Resolve the broker password from the environment variable or file named in config."""
        if self.password_env:
            return os.environ.get(self.password_env)
        if self.password_file:
            return self.password_file.read_text(encoding="utf-8").strip()
        return None


class HttpConfig(_Frozen):
    """Where the health/metrics (and later REST) endpoint listens."""

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    # Addresses of reverse proxies whose X-Forwarded-For / X-Forwarded-Proto the hub believes
    # (the client address that rate limits and logs use). Empty: no one's; a client that sends
    # the header itself cannot pose as another address.
    trusted_proxies: tuple[str, ...] = ()


class ApiConfig(_Frozen):
    """REST/WebSocket API: token lifetimes, CORS, rate limits (docs/api.md)."""

    access_token_ttl_s: int = Field(default=900, ge=30, le=86_400)
    refresh_token_ttl_s: int = Field(default=14 * 86_400, ge=300)
    # Closed by default: the dashboard is served from the hub's own origin.
    cors_origins: tuple[str, ...] = ()
    requests_per_minute: int = Field(default=1200, ge=1)
    # Strict: guessing passwords at 10 a minute per IP and per user name is hopeless.
    logins_per_minute: int = Field(default=10, ge=1)


class KafkaConfig(_Frozen):
    """The Kafka bridge (docs/kafka.md): outbox relay settings and the topics `kafka init` makes."""

    bootstrap: str = Field(pattern=r"^[^,\s]+:\d+(,[^,\s]+:\d+)*$")
    # Stable across restarts and shared by every hub instance: a relay that takes over fences the
    # previous one (Kafka aborts its open transaction), and it names the relay's cursor record.
    transactional_id: str = Field(default="millstream-relay", min_length=1, max_length=200)
    # serve runs the relay in-process (one instance at a time relays: a PostgreSQL advisory lock).
    relay_in_process: bool = True
    telemetry_topic: str = "millstream.telemetry"
    state_topic: str = "millstream.relay-state"
    deadletter_topic: str = "millstream.deadletter"
    alerts_topic: str = "millstream.alerts"
    events_topic: str = "millstream.events"
    partitions: int = Field(default=12, ge=1, le=10_000)
    # None = the cluster's default.replication.factor (3 on a production cluster, 1 on a dev node).
    replication_factor: int | None = Field(default=None, ge=1, le=15)
    # None = the cluster's min.insync.replicas; set on every topic `kafka init` creates (2 with
    # replication 3: an acks=all write, and so a relay commit, survives one broker down).
    min_insync_replicas: int | None = Field(default=None, ge=1, le=15)
    retention_ms: int = Field(default=7 * 24 * 3600 * 1000, ge=-1)
    batch_readings: int = Field(default=50_000, ge=1, le=1_000_000)
    linger_ms: int = Field(default=20, ge=0, le=5_000)
    compression: str = Field(default="lz4", pattern=r"^(none|gzip|snappy|lz4|zstd)$")
    transaction_timeout_s: float = Field(default=60.0, gt=0, le=900)

    @model_validator(mode="after")
    def _isr_fits(self) -> KafkaConfig:
        isr, rf = self.min_insync_replicas, self.replication_factor
        if isr is not None and rf is not None and isr > rf:
            raise ValueError(
                f"min_insync_replicas {isr} > replication_factor {rf}: no write could succeed; "
                "use e.g. replication_factor 3, min_insync_replicas 2"
            )
        return self


class RedisConfig(_Frozen):
    """Redis for latest values and live fan-out between hub instances (docs/kafka.md)."""

    url: str = Field(pattern=r"^rediss?://")
    channel: str = "ms:live"
    key_prefix: str = "ms:latest:"


_SPB_FIELDS = frozenset({"group", "node", "device"})


class SparkplugConfig(_Frozen):
    """The hub as Sparkplug B primary host application (docs/sparkplug.md)."""

    # The id in `spBv1.0/STATE/{host_id}`: what edge nodes are configured to honour.
    host_id: str = Field(default="millstream", pattern=f"^{SEGMENT_PATTERN}$")
    # Which Sparkplug ids make site, line and machine: templates over {group}, {node}, {device}
    # (node-level metrics: {device} is the edge node id).
    site: str = "{group}"
    line: str = "{node}"
    machine: str = "{device}"
    # At most one rebirth request per edge node in this time (a node that keeps sending
    # unknown aliases is not flooded with requests).
    rebirth_interval_s: float = Field(default=5.0, ge=0.5, le=3600)

    @field_validator("site", "line", "machine")
    @classmethod
    def _template(cls, value: str) -> str:
        try:
            fields = {name for _, name, _, _ in string.Formatter().parse(value) if name}
        except ValueError as exc:
            raise ValueError(f'not a template: {exc}; e.g. "{{group}}"') from None
        unknown = fields - _SPB_FIELDS
        if unknown:
            raise ValueError(
                f"unknown field {{{sorted(unknown)[0]}}}; use {{group}}, {{node}} or {{device}}"
            )
        return value


class HubConfig(_Frozen):
    """The hub's whole configuration."""

    mqtt: MqttConfig = MqttConfig()
    storage: str = "sqlite:///millstream.db"
    http: HttpConfig = HttpConfig()
    flush_ms: int = Field(default=50, ge=1, le=10_000)
    retention_days: int = Field(default=90, ge=1)
    dead_letter_retention_days: int = Field(default=30, ge=1)
    # HS256 signing key of API access tokens; no default (MILLSTREAM_JWT_SECRET, >= 32 bytes).
    jwt_secret: SecretStr | None = None
    api: ApiConfig = ApiConfig()
    kafka: KafkaConfig | None = None  # absent: no Kafka bridge
    redis: RedisConfig | None = None  # absent: no Redis (live views stay in-process)
    alerts: AlertsConfig | None = None  # absent: no alert evaluation (docs/alerts.md)
    smtp: SmtpConfig | None = None  # the mail server of email notifiers
    sparkplug: SparkplugConfig | None = None  # absent: no Sparkplug B host (docs/sparkplug.md)
    tracing: TracingConfig = TracingConfig()  # off by default (docs/tracing.md)

    @model_validator(mode="after")
    def _kafka_needs_postgres(self) -> HubConfig:
        # The outbox is written in the PostgreSQL ingest transaction; SQLite has no outbox.
        if self.kafka is not None and urlsplit(self.storage).scheme == "sqlite":
            raise ValueError("the Kafka bridge needs PostgreSQL storage (remove `kafka:`)")
        return self

    @model_validator(mode="after")
    def _alerts_need_their_parts(self) -> HubConfig:
        alerts = self.alerts
        if alerts is None:
            return self
        kinds = {n.kind for n in alerts.notifiers}
        problems = []
        if "email" in kinds and self.smtp is None:
            problems.append("email notifiers need an `smtp:` section with the mail server")
        if urlsplit(self.storage).scheme == "sqlite":
            # The SQLite evaluator is the one hub instance that writes the file (docs/alerts.md).
            if "kafka" in kinds:
                problems.append(
                    "a kafka notifier needs PostgreSQL storage (the Kafka outbox); on SQLite use"
                    " webhook, email or mqtt notifiers"
                )
            if self.redis is not None:
                problems.append(
                    "alerts on SQLite storage are evaluated by a single hub instance; several"
                    " instances (a `redis:` section) need PostgreSQL storage for alerts"
                )
        elif "kafka" in kinds and self.kafka is None:
            problems.append("a kafka notifier needs the `kafka:` section (the Kafka bridge)")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @field_validator("jwt_secret", mode="before")
    @classmethod
    def _secret_text(cls, value: object) -> object:
        # Environment values are parsed as YAML scalars; a secret is always the literal text.
        return value if value is None or isinstance(value, str | SecretStr) else str(value)

    @field_validator("storage")
    @classmethod
    def _check_storage(cls, value: str) -> str:
        scheme = urlsplit(value).scheme
        if scheme not in {"postgresql", "postgres", "sqlite"}:
            raise ValueError("expected postgresql://user@host:port/db or sqlite:///path/to/file.db")
        return value


_HINTS = {
    "extra_forbidden": "remove it or check the spelling; see docs/hub.md for the keys",
    "missing": "add this key",
}


def _hint(path: str, kind: str) -> str:
    if path == "storage":
        return "storage: postgresql://millstream@127.0.0.1:5432/millstream or sqlite:///hub.db"
    if path == "mqtt.url":
        return "mqtt: {url: mqtt://127.0.0.1:1883}"
    return _HINTS.get(kind, "")


def _merge_alerts_file(data: dict[str, Any], name: str, base: Path) -> list[ConfigProblem]:
    """Append the notifiers and rules of the file `alerts.file` names to the config's own."""
    alerts = data.get("alerts")
    if not isinstance(alerts, dict) or not alerts.get("file"):
        return []
    file = base / str(alerts["file"])
    hint = "a YAML file with `notifiers:` and/or `rules:` lists, as under `alerts:`"
    try:
        loaded = yaml.safe_load(file.read_text(encoding="utf-8")) or {}
    except OSError as exc:
        return [ConfigProblem(name, "alerts.file", f"cannot read {file}: {exc.strerror}", hint)]
    except yaml.YAMLError as exc:
        return [ConfigProblem(str(file), "", f"not valid YAML: {exc}", hint)]
    if not isinstance(loaded, dict) or set(loaded) - {"notifiers", "rules"}:
        return [ConfigProblem(str(file), "", "expected only `notifiers:` and `rules:`", hint)]
    for key in ("notifiers", "rules"):
        extra = loaded.get(key) or []
        if not isinstance(extra, list):
            return [ConfigProblem(str(file), key, "expected a list", hint)]
        alerts[key] = [*(alerts.get(key) or []), *extra]
    return []


def load_config(path: str | Path | None, environ: Mapping[str, str] | None = None) -> HubConfig:
    """Load the YAML file (None = defaults only), apply env overrides, validate everything."""
    env = os.environ if environ is None else environ
    name = str(path) if path is not None else "<defaults>"
    data: dict[str, Any] = {}
    if path is not None:
        try:
            loaded = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigError([ConfigProblem(name, "", f"cannot read: {exc.strerror}")]) from exc
        except yaml.YAMLError as exc:
            raise ConfigError([ConfigProblem(name, "", f"not valid YAML: {exc}")]) from exc
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError([ConfigProblem(name, "", "top level must be a mapping of keys")])
        data = loaded or {}
    data, _origins, problems = apply_env_overrides(data, env, HubConfig.model_fields.keys())
    base = Path(path).parent if path is not None else Path()
    problems += _merge_alerts_file(data, name, base)
    try:
        config = HubConfig.model_validate(data)
    except ValidationError as exc:
        for err in exc.errors():
            where = ".".join(str(p) for p in err["loc"])
            problems.append(ConfigProblem(name, where, err["msg"], _hint(where, err["type"])))
        raise ConfigError(problems) from exc
    if problems:
        raise ConfigError(problems)
    return config
