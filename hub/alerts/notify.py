"""Notifiers: deliver a transition's body to a webhook, a mailbox or an MQTT topic.

Each `send` either returns (the receiver has it) or raises `DeliveryError` (try again later):
delivery is at least once, and every body carries an `idempotency_key` (also the webhook's
`Idempotency-Key` header) by which receivers drop a repeat.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import smtplib
import ssl
import time
from collections.abc import Callable, Mapping, Sequence
from email.message import EmailMessage
from typing import Any, Protocol

import httpx

from hub.alerts.rules import (
    AlertsConfig,
    EmailNotifier,
    KafkaNotifier,
    MqttNotifier,
    SmtpConfig,
    WebhookNotifier,
)

__all__ = [
    "ALERT_TOPIC_PREFIX",
    "DeliveryError",
    "Publish",
    "Sender",
    "alert_topic",
    "build_senders",
    "signature",
]

ALERT_TOPIC_PREFIX = "ms/v1/alerts"
SIGNATURE_HEADER = "X-Millstream-Signature"

# Publish(topic, payload) -> a handle whose is_published() turns true on the broker's PUBACK.
Publish = Callable[[str, bytes], Any]


class DeliveryError(Exception):
    """The receiver does not have it yet: retry later."""


class Sender(Protocol):
    """One configured notifier."""

    async def send(self, bodies: Sequence[Mapping[str, Any]]) -> None:
        """Deliver these transitions (in order) or raise `DeliveryError`."""
        ...

    async def aclose(self) -> None:
        """Release connections."""
        ...


def _encode(body: Mapping[str, Any]) -> bytes:
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


def signature(secret: bytes, body: bytes) -> str:
    """The `X-Millstream-Signature` header value: `sha256=<hex HMAC-SHA256 of the body>`."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def alert_topic(body: Mapping[str, Any]) -> str:
    """`ms/v1/alerts/{site}/{line}/{machine}` for on-site systems (andon boards, PLCs)."""
    return f"{ALERT_TOPIC_PREFIX}/{body['site']}/{body['line']}/{body['machine']}"


class _Webhook:
    def __init__(self, cfg: WebhookNotifier) -> None:
        self.cfg = cfg
        self._secret = cfg.secret()
        self._client = httpx.AsyncClient(timeout=cfg.timeout_s, follow_redirects=False)

    async def send(self, bodies: Sequence[Mapping[str, Any]]) -> None:
        for body in bodies:
            data = _encode(body)
            headers = {
                "Content-Type": "application/json",
                "Idempotency-Key": str(body["idempotency_key"]),
                "User-Agent": "millstream-hub",
            }
            if self._secret is not None:
                headers[SIGNATURE_HEADER] = signature(self._secret, data)
            try:
                response = await self._client.post(self.cfg.url, content=data, headers=headers)
            except httpx.HTTPError as exc:
                raise DeliveryError(f"{type(exc).__name__}: {exc}") from exc
            if not 200 <= response.status_code < 300:
                raise DeliveryError(f"HTTP {response.status_code}")

    async def aclose(self) -> None:
        await self._client.aclose()


def _subject(body: Mapping[str, Any]) -> str:
    where = f"{body['site']}/{body['line']}/{body['machine']}"
    return f"[{body['severity']}] {body['rule']} {body['state']}: {where} {body['tag']}"


def _text(body: Mapping[str, Any]) -> str:
    when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(int(body["ts"]) / 1000))
    if body.get("kind") == "event":
        # Raised by the machine: `tag` holds the event's source, `value` its severity (1-1000).
        what, value, why = "event source", f"Event severity: {body['value']:g}", "Message"
    else:
        what, value, why = "tag", f"Value: {body['value']}", "Why"
    lines = [
        f"Alert {body['rule']} is {body['state']} ({body['severity']}).",
        f"Machine: {body['site']}/{body['line']}/{body['machine']}, {what} {body['tag']}",
        f"{value} at {when}",
        f"{why}: {body['detail']}",
    ]
    if body.get("comment"):
        lines.append(f"Comment by {body['by']}: {body['comment']}")
    lines.append(f"Occurrence: {body['id']}")
    return "\n".join(lines) + "\n"


class _Email:
    """One message per transition; many transitions at once go over one SMTP session."""

    def __init__(self, cfg: EmailNotifier, smtp: SmtpConfig) -> None:
        self.cfg = cfg
        self.smtp = smtp

    def _deliver(self, bodies: Sequence[Mapping[str, Any]]) -> None:
        smtp = self.smtp
        with smtplib.SMTP(smtp.host, smtp.port, timeout=smtp.timeout_s) as client:
            if smtp.starttls:
                client.starttls(context=ssl.create_default_context())
            password = smtp.password()
            if smtp.username and password is not None:
                client.login(smtp.username, password.get_secret_value())
            for body in bodies:
                msg = EmailMessage()
                msg["From"] = smtp.sender
                msg["To"] = ", ".join(self.cfg.to)
                msg["Subject"] = _subject(body)
                msg["Message-ID"] = f"<{body['idempotency_key'].replace(':', '.')}@millstream>"
                msg.set_content(_text(body))
                client.send_message(msg)

    async def send(self, bodies: Sequence[Mapping[str, Any]]) -> None:
        try:
            await asyncio.to_thread(self._deliver, bodies)
        except (OSError, smtplib.SMTPException) as exc:
            raise DeliveryError(f"{type(exc).__name__}: {exc}") from exc

    async def aclose(self) -> None:
        return None


class _Mqtt:
    PUBACK_TIMEOUT_S = 10.0

    def __init__(self, publish: Publish | None) -> None:
        self._publish = publish

    async def send(self, bodies: Sequence[Mapping[str, Any]]) -> None:
        if self._publish is None:
            raise DeliveryError("this hub process has no broker session")
        infos = [self._publish(alert_topic(b), _encode(b)) for b in bodies]
        deadline = time.monotonic() + self.PUBACK_TIMEOUT_S
        while not all(i.is_published() for i in infos):
            if time.monotonic() > deadline:
                raise DeliveryError("the broker did not acknowledge the alert in time")
            await asyncio.sleep(0.02)

    async def aclose(self) -> None:
        return None


def build_senders(
    cfg: AlertsConfig, smtp: SmtpConfig | None, publish: Publish | None
) -> dict[str, Sender]:
    """A sender per configured notifier (Kafka ones travel with the outbox instead)."""
    senders: dict[str, Sender] = {}
    for n in cfg.notifiers:
        if isinstance(n, WebhookNotifier):
            senders[n.name] = _Webhook(n)
        elif isinstance(n, EmailNotifier):
            if smtp is None:
                raise ValueError("email notifiers need an `smtp:` section")
            senders[n.name] = _Email(n, smtp)
        elif isinstance(n, MqttNotifier):
            senders[n.name] = _Mqtt(publish)
        else:
            assert isinstance(n, KafkaNotifier)
    return senders
