"""Publisher settings as plain values, built from the `mqtt` config section."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from edge_agent.config import MqttSection
from edge_agent.errors import ConfigError, ConfigProblem

__all__ = ["PublisherSettings"]


@dataclass(frozen=True, slots=True)
class PublisherSettings:
    """Everything the publisher needs to connect and pace itself."""

    host: str
    port: int
    client_id: str
    tls: bool = False
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    username: str | None = None
    password: str | None = field(default=None, repr=False)  # never in a log line
    keepalive: int = 30
    inflight: int = 100
    receipts: bool = True
    receipt_timeout: float = 30.0
    max_batch: int = 1000
    backlog_rate: float = 200_000.0
    # The backlog keeps at most this many seconds of its pace sent and not yet receipted (and
    # at least one batch): however wrong a hub's drain budget, the fleet's backlogs then queue
    # for the hub a few seconds' worth, never the receipt timeout's, so none is sent twice.
    backlog_ahead_s: float = 5.0
    reconnect_min: float = 1.0
    reconnect_max: float = 60.0
    connect_timeout: float = 10.0
    protocol: str = "mqttv311"  # or "mqttv5"
    # MQTT v5: how long the broker keeps our session (and receipts for us) while we are away.
    session_expiry_s: int = 7 * 24 * 3600

    @classmethod
    def from_config(
        cls, mqtt: MqttSection, agent_id: str, *, config_file: str = ""
    ) -> PublisherSettings:
        """Translate the config section; read the password from env or file now."""
        url = urlsplit(mqtt.url)
        tls = url.scheme == "mqtts"
        password = url.password
        if mqtt.password_env:
            password = os.environ.get(mqtt.password_env)
            if password is None:
                raise ConfigError(
                    [
                        ConfigProblem(
                            config_file,
                            "mqtt.password_env",
                            f"environment variable {mqtt.password_env} is not set",
                            f"export {mqtt.password_env}=... before starting the agent",
                        )
                    ]
                )
        elif mqtt.password_file:
            try:
                password = Path(mqtt.password_file).read_text().strip()
            except OSError as exc:
                raise ConfigError(
                    [
                        ConfigProblem(
                            config_file,
                            "mqtt.password_file",
                            f"cannot read {mqtt.password_file}: {exc.strerror}",
                            "the file must be readable by the agent's user",
                        )
                    ]
                ) from exc
        return cls(
            host=url.hostname or "127.0.0.1",
            port=url.port or (8883 if tls else 1883),
            client_id=mqtt.client_id or agent_id,
            tls=tls or mqtt.ca_file is not None,
            ca_file=mqtt.ca_file,
            cert_file=mqtt.cert_file,
            key_file=mqtt.key_file,
            username=mqtt.username or url.username,
            password=password,
            keepalive=max(5, int(mqtt.keepalive.total_seconds())),
            inflight=mqtt.inflight,
            receipts=mqtt.receipts,
            receipt_timeout=mqtt.receipt_timeout.total_seconds(),
            max_batch=mqtt.max_batch,
            backlog_rate=float(mqtt.backlog_rate),
            reconnect_min=mqtt.reconnect_min.total_seconds(),
            reconnect_max=mqtt.reconnect_max.total_seconds(),
            protocol=mqtt.protocol,
        )
