"""Event rules end to end: a device publishes a machine-events batch straight to MQTT (real
Mosquitto); a `millstream-hub serve` process on PostgreSQL stores it, the evaluator matches it,
and a real HTTP receiver gets exactly one webhook and a real SMTP server one mail. The same batch
sent again (no receipt seen) notifies nobody; the alarm's `cleared` resolves the occurrence.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

import wire
from tests.harness import free_port
from tests.harness.hubproc import HubProcess, hub_cli, wait_ready
from tests.harness.webhook import WebhookReceiver
from tests.hub.alerts.test_alerts_e2e import Mailbox, _async, _fetch, eventually

pytestmark = pytest.mark.asyncio(loop_scope="session")


def write_config(tmp: Path, mqtt_url: str, dsn: str, hook: str, smtp_port: int) -> tuple[Path, int]:
    port = free_port()
    config = tmp / "hub.yaml"
    ids = f"client_id: hub-{uuid.uuid4().hex[:8]}, share_group: g{uuid.uuid4().hex[:8]}"
    config.write_text(
        f"""
mqtt: {{url: '{mqtt_url}', {ids}}}
storage: '{dsn}'
http: {{host: 127.0.0.1, port: {port}}}
flush_ms: 20
jwt_secret: {os.urandom(24).hex()}
smtp: {{host: 127.0.0.1, port: {smtp_port}, starttls: false, sender: hub@plant.example}}
alerts:
  notifiers:
    - {{name: ops-hook, kind: webhook, url: '{hook}'}}
    - {{name: ops-mail, kind: email, to: [ops@plant.example]}}
  rules:
    - {{name: guard-open, event: {{min_severity: 600, type: alarm, source: guard_open}},
       match: {{machine: "press-*"}}, severity: critical, notify: [ops-hook, ops-mail]}}
"""
    )
    return config, port


class EventDevice:
    """A machine publishing its own events batches (wire contract v1), QoS 1."""

    def __init__(self, host: str, port: int, site: str) -> None:
        self.topic = f"ms/v1/{site}/line-1/press-7/events"
        self.src = f"dev-{uuid.uuid4().hex[:8]}"
        self.client = paho.Client(
            CallbackAPIVersion.VERSION2, client_id=self.src, protocol=MQTTProtocolVersion.MQTTv5
        )
        self.client.connect(host, port)
        self.client.loop_start()

    async def send(self, seq: int, events: list[wire.MachineEvent]) -> None:
        info = self.client.publish(self.topic, wire.encode_events(self.src, seq, events), qos=1)
        await asyncio.to_thread(info.wait_for_publish, 10)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def guard(state: str, ts: int, severity: int = 800) -> wire.MachineEvent:
    return wire.MachineEvent(
        id="guard-17", ts=ts, source="guard_open", type="alarm", severity=severity,
        message="Guard door open", state=state,
    )  # fmt: skip


async def test_a_machine_alarm_notifies_once_and_its_clear_resolves_it(
    mosquitto: Any, pg_dsn: str, tmp_path: Path, receiver: WebhookReceiver
) -> None:
    mailbox = Mailbox()
    config, port = write_config(tmp_path, mosquitto.url, pg_dsn, receiver.url, mailbox.port)
    hub_cli(config, "migrate")
    site = f"s{uuid.uuid4().hex[:8]}"
    hub = HubProcess(config, tmp_path / "hub.log")
    device = EventDevice(mosquitto.host, mosquitto.port, site)
    try:
        await wait_ready(port, hub)
        now = time.time_ns() // 1_000_000
        raised = [
            guard("active", now),
            # Below the rule's severity, and another source: stored, not alerted.
            wire.MachineEvent(id="oil-3", ts=now, source="oil_level", type="alarm",
                              severity=900, message="Oil low", state="active"),
            wire.MachineEvent(id="note-1", ts=now, source="guard_open", type="alarm",
                              severity=300, message="Guard ajar", state="active"),
        ]  # fmt: skip
        await device.send(1, raised)
        await eventually(_async(lambda: receiver.states() == ["active"]))
        await eventually(_async(lambda: mailbox.states() == ["active"]))
        # The same batch again, as an agent resends one whose receipt it did not see, then one
        # more: once that is stored, the hub has been through the repeat.
        await device.send(1, raised)
        await device.send(2, [guard("acked", now + 500)])  # the machine's own ack: no change

        async def all_stored() -> bool:
            rows = await _fetch(pg_dsn, "SELECT count(*) FROM machine_events WHERE site = $1", site)
            return int(rows[0][0]) == 4

        await eventually(all_stored)
        await asyncio.sleep(2.0)  # the evaluator reads the feed within a second
        assert receiver.states() == ["active"]
        assert mailbox.states() == ["active"]
        alert = receiver.bodies()[0]
        assert (alert["rule"], alert["kind"], alert["severity"]) == (
            "guard-open",
            "event",
            "critical",
        )
        assert (alert["site"], alert["machine"], alert["tag"]) == (site, "press-7", "guard_open")
        assert alert["value"] == 800
        assert alert["ts"] == now
        assert "Guard door open" in alert["detail"]
        mail = mailbox.messages[0]
        assert mail["Subject"] == f"[critical] guard-open active: {site}/line-1/press-7 guard_open"
        text = mail.get_payload()
        assert "event source guard_open" in text
        assert "Event severity: 800" in text

        await device.send(3, [guard("cleared", now + 1000, severity=100)])
        await eventually(_async(lambda: receiver.states() == ["active", "cleared"]))
        await eventually(_async(lambda: mailbox.states() == ["active", "cleared"]))
        rows = await _fetch(
            pg_dsn, "SELECT id, state, active_ms, cleared_ms FROM alerts WHERE site = $1", site
        )
        assert [(str(r[0]), r[1], r[2], r[3]) for r in rows] == [
            (alert["id"], "cleared", now, now + 1000)
        ]
        await asyncio.sleep(1.5)
        assert receiver.states() == ["active", "cleared"]
    finally:
        device.close()
        hub.close()
        mailbox.controller.stop()
