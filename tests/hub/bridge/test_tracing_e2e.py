"""One batch followed end to end (docs/tracing.md): a simulated Modbus machine → `edge-agent run`
→ Mosquitto → `millstream-hub serve` → PostgreSQL → outbox → `millstream-hub kafka-relay` →
Kafka, each process exporting to a real OTLP/HTTP receiver. One batch gives one trace across
the three processes, each span under the right parent, and the Kafka records carry it on.

The hub and the relay run at ratio 0: they keep a trace only because the agent decided to keep
it (its `trace` field says so), and a dead-lettered message because it is one.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as paho
import pytest
import yaml
from bridgetest import consume_all, kafka_config, pg_value, unique
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from hub.bridge.kafka import create_topics
from tests.harness import free_port
from tests.harness.devicestate import simulated_plant_config
from tests.harness.hubproc import HUB, HubProcess, hub_cli, hub_env, wait_ready
from tests.harness.otlp import OtlpReceiver, ReceivedSpan, span_tree

pytestmark = [pytest.mark.timeout(300), pytest.mark.slow]

EDGE_AGENT = str(Path(sys.executable).with_name("edge-agent"))
AGENT, HUB_SERVICE, RELAY = "millstream-agent", "millstream-hub", "millstream-relay"
# Name → (its service, its parent's name; None for the trace's root).
TREE = {
    "agent.batch": (AGENT, None),
    "agent.poll": (AGENT, "agent.batch"),
    "agent.chunk_commit": (AGENT, "agent.batch"),
    "agent.publish": (AGENT, "agent.batch"),
    "agent.receipt": (AGENT, "agent.batch"),
    "hub.ingest": (HUB_SERVICE, "agent.publish"),
    "hub.validate": (HUB_SERVICE, "hub.ingest"),
    "hub.live": (HUB_SERVICE, "hub.ingest"),
    "hub.commit": (HUB_SERVICE, "hub.ingest"),
    "hub.outbox": (HUB_SERVICE, "hub.commit"),
    "hub.receipt": (HUB_SERVICE, "hub.ingest"),
    "kafka.produce": (RELAY, "hub.outbox"),
}


@pytest.fixture
def otlp() -> Iterator[OtlpReceiver]:
    receiver = OtlpReceiver()
    yield receiver
    receiver.close()


def _env() -> dict[str, str]:
    # Export every 200 ms instead of the SDK's 5 s: the test waits for the spans.
    return {**hub_env(), "OTEL_BSP_SCHEDULE_DELAY": "200"}


def _complete(spans: list[ReceivedSpan]) -> str | None:
    """A trace id with every span of TREE, once the spans have arrived."""
    by_trace: dict[str, set[str]] = {}
    for s in spans:
        by_trace.setdefault(s.trace_id, set()).add(s.name)
    return next((t for t, names in by_trace.items() if names >= TREE.keys()), None)


def _publish_v5(url: str, topic: str, payload: bytes, traceparent: str) -> None:
    """One QoS 1 PUBLISH from an MQTT v5 device that sends its trace context as a user property."""
    host, port = url.removeprefix("mqtt://").split(":")
    client = paho.Client(CallbackAPIVersion.VERSION2, protocol=MQTTProtocolVersion.MQTTv5)
    client.connect(host, int(port))
    client.loop_start()
    props = Properties(PacketTypes.PUBLISH)
    props.UserProperty = ("traceparent", traceparent)
    client.publish(topic, payload, qos=1, properties=props).wait_for_publish(10)
    client.loop_stop()
    client.disconnect()


async def _drained(dsn: str, why: Any) -> None:
    for _ in range(300):
        if await pg_value(dsn, "SELECT count(*) FROM kafka_outbox") == 0:
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"outbox not drained\n{why()}")


async def _until(pred: Any, within: float, why: Any) -> Any:
    for _ in range(int(within / 0.2)):
        got = pred()
        if got:
            return got
        await asyncio.sleep(0.2)
    raise AssertionError(why())


# MQTT 3.1.1: the context in the payload's `trace` field; MQTT v5: a `traceparent` user property.
@pytest.mark.parametrize("protocol", ["mqttv311", "mqttv5"])
async def test_one_batch_is_one_trace_across_agent_hub_and_relay(
    protocol: str,
    otlp: OtlpReceiver,
    mosquitto_factory: Any,
    kafka: Any,
    pg_dsn: str,
    tmp_path: Path,
) -> None:
    broker = mosquitto_factory(persistence=False)
    kcfg = kafka_config(kafka.bootstrap, relay_in_process=False)
    await asyncio.to_thread(create_topics, kcfg)
    port = free_port()
    hub_yaml = tmp_path / "hub.yaml"
    hub_yaml.write_text(
        yaml.safe_dump(
            {
                "mqtt": {
                    "url": broker.url,
                    "client_id": unique("hub-"),
                    "share_group": unique("g"),
                },
                "storage": pg_dsn,
                "http": {"host": "127.0.0.1", "port": port},
                "flush_ms": 20,
                "jwt_secret": os.urandom(24).hex(),
                "kafka": kcfg.model_dump(exclude_none=True),
                "tracing": {"enabled": True, "ratio": 0.0, "endpoint": otlp.url},
            }
        )
    )
    hub_cli(hub_yaml, "migrate")

    modbus = free_port()
    agent_yaml = simulated_plant_config(tmp_path, modbus, broker.url, "trace-pc", machines=1)
    agent_cfg = yaml.safe_load(agent_yaml.read_text())
    agent_cfg["tracing"] = {"enabled": True, "ratio": 1.0, "endpoint": otlp.url}
    agent_cfg["mqtt"]["receipt_timeout"] = "5s"
    agent_cfg["mqtt"]["protocol"] = protocol
    agent_yaml.write_text(yaml.safe_dump(agent_cfg, sort_keys=False))

    logs = {name: (tmp_path / f"{name}.log").open("ab") for name in ("sim", "relay", "agent")}
    procs: list[subprocess.Popen[bytes]] = []

    def start(*args: str, log: str) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(args, stdout=logs[log], stderr=logs[log], env=_env())
        procs.append(proc)
        return proc

    def tails() -> str:
        return "\n".join(
            f"--- {name}\n{(tmp_path / f'{name}.log').read_text(errors='replace')[-2000:]}"
            for name in ("agent", "relay")
        )

    ports = ("--modbus-port", str(modbus), "--opcua-port", str(free_port()))
    start(EDGE_AGENT, "simulate", "--machines", "1", *ports, "--control-port", str(free_port()),
          log="sim")  # fmt: skip
    hub = HubProcess(hub_yaml, tmp_path / "hub.log", env=_env())
    try:
        await wait_ready(port, hub)
        start(HUB, "kafka-relay", "--config", str(hub_yaml), log="relay")
        agent = start(EDGE_AGENT, "run", str(agent_yaml), log="agent")

        trace_id = await _until(
            lambda: _complete(otlp.spans),
            120,
            lambda: f"no complete trace; got {Counter(s.name for s in otlp.spans)}\n{tails()}",
        )
        spans = otlp.trace(trace_id)
        print(f"\ntrace {trace_id}:\n{span_tree(spans)}")

        # One span of each step, from the process that does it, under the right parent.
        names = Counter(s.name for s in spans)
        assert all(names[n] == 1 for n in TREE), names
        by_name = {s.name: s for s in spans}
        for name, (service, parent) in TREE.items():
            span = by_name[name]
            assert span.service == service, (name, span.service)
            if parent is None:
                assert span.parent_id == "", name
            else:
                assert span.parent_id == by_name[parent].span_id, (name, parent)
            assert span.end_ns >= span.start_ns, name
        # Causality across processes (one clock on this machine).
        assert by_name["hub.ingest"].start_ns >= by_name["agent.publish"].start_ns
        assert by_name["kafka.produce"].end_ns >= by_name["hub.commit"].end_ns
        assert by_name["agent.receipt"].end_ns >= by_name["hub.receipt"].start_ns
        batch = by_name["agent.batch"].attributes
        ingest = by_name["hub.ingest"].attributes
        assert (ingest["millstream.src"], ingest["millstream.seq"]) == (
            "trace-pc",
            batch["millstream.seq"],
        )

        # The commit-latency histogram's exemplars name kept traces' commit spans (OpenMetrics).
        async with httpx.AsyncClient() as client:
            text = (
                await client.get(
                    f"http://127.0.0.1:{port}/metrics",
                    headers={"Accept": "application/openmetrics-text; version=1.0.0"},
                )
            ).text
        exemplars = set()
        for line in text.splitlines():
            if line.startswith("millstream_commit_seconds_bucket") and " # {" in line:
                labels = dict(re.findall(r'(\w+)="([^"]*)"', line.split(" # ", 1)[1]))
                exemplars.add((labels["span_id"], labels["trace_id"]))
        assert exemplars, text[:3000]
        commits = {(s.span_id, s.trace_id) for s in otlp.spans if s.name == "hub.commit"}
        assert exemplars & commits, (exemplars, len(commits))

        # Downstream consumers continue the trace from the records' headers (read once the agent
        # has stopped and the relay has caught up: the consumer reads to the end of the log).
        agent.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(agent.wait, 30) == 0, tails()
        await _drained(pg_dsn, tails)
        records = await asyncio.to_thread(consume_all, kafka.bootstrap, kcfg.telemetry_topic, 60)
        produce = by_name["kafka.produce"]
        carried = [
            r for r in records if r.headers.get("traceparent", b"").decode().split("-")[1:3]
            == [trace_id, produce.span_id]
        ]  # fmt: skip
        assert len(carried) == ingest["millstream.readings"], len(carried)

        # A dead-lettered message is traced whatever the ratio: an MQTT v5 device's broken batch
        # whose own context said "not sampled".
        bad_trace = "a" * 32
        payload = json.dumps({"v": 1, "src": "dev-1", "seq": 1, "readings": "nope"}).encode()
        await asyncio.to_thread(
            _publish_v5,
            broker.url,
            "ms/v1/plant/l1/broken/telemetry",
            payload,
            f"00-{bad_trace}-{'b' * 16}-00",
        )
        dead = await _until(
            lambda: [s for s in otlp.trace(bad_trace) if s.name == "hub.dead_letter"],
            60,
            lambda: f"no dead-letter span; trace: {otlp.trace(bad_trace)}",
        )
        assert dead[0].error, dead[0]
        (ingest_dead,) = [s for s in otlp.trace(bad_trace) if s.name == "hub.ingest"]
        assert ingest_dead.parent_id == "b" * 16
        assert dead[0].parent_id == ingest_dead.span_id
    finally:
        for proc in reversed(procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        hub.close()
        for f in logs.values():
            f.close()
