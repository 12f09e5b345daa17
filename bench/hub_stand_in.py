"""A private Mosquitto and a receipt responder standing in for the hub, for the agent benchmarks.

broker, port = start_broker(tmp)             # mosquitto on 127.0.0.1, ephemeral port
responder = start_responder(port, tmp / "responder.log")   # its own process: its CPU is not
...                                                         # the agent's
stop(responder); broker.terminate(); broker.wait()

The responder subscribes to every telemetry topic and answers like the hub: coalesced receipts
per `src` every 50 ms, naming each batch's seq and payload digest.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import aiomqtt

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import wire

__all__ = ["HEAD", "free_port", "responder", "start_broker", "start_responder", "stop"]

HEAD = re.compile(rb'\{"v":1,"src":"(?P<src>[^"]+)","seq":(?P<seq>\d+),')


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_broker(workdir: Path) -> tuple[subprocess.Popen[bytes], int]:
    """Mosquitto on 127.0.0.1 with queues deep enough that the broker never drops; its port."""
    port = free_port()
    conf = workdir / "mosquitto.conf"
    conf.write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
        "max_queued_messages 1000000\nmax_inflight_messages 0\n"
    )
    proc = subprocess.Popen(["mosquitto", "-c", str(conf)], stderr=subprocess.DEVNULL)
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
        except OSError:
            time.sleep(0.05)
        else:
            return proc, port
    raise RuntimeError("mosquitto did not start")


async def responder(port: int) -> None:
    """Subscribe to telemetry and answer with coalesced receipts (like the hub), forever."""
    pending: dict[str, list[tuple[int, str]]] = {}

    async with aiomqtt.Client("127.0.0.1", port, identifier="bench-hub", clean_session=True) as c:
        await c.subscribe("ms/v1/+/+/+/telemetry", qos=1)

        async def flush() -> None:
            while True:
                await asyncio.sleep(0.05)
                for src, batches in list(pending.items()):
                    if batches:
                        pending[src] = []
                        seqs = wire.coalesce_seqs(seq for seq, _ in batches)
                        await c.publish(
                            wire.receipt_topic(src), wire.encode_receipt(seqs, batches), qos=1
                        )

        task = asyncio.create_task(flush())
        async for msg in c.messages:
            assert isinstance(msg.payload, bytes)
            # Only src and seq are read (and the digest taken, as the hub does): the benchmarks
            # measure the agent; what a real hub costs per reading is bench/hub_ingest.py's
            # figure. On a shared 2-core box a stand-in that parses every reading would be the
            # bottleneck being measured.
            head = HEAD.match(msg.payload)
            assert head is not None
            batch = (int(head["seq"]), wire.batch_digest(msg.payload))
            pending.setdefault(head["src"].decode(), []).append(batch)
        task.cancel()


def start_responder(port: int, log: Path) -> subprocess.Popen[bytes]:
    """The responder in its own process (this file run as a script), logging to `log`."""
    with log.open("ab") as f:
        return subprocess.Popen([sys.executable, __file__, str(port)], stdout=f, stderr=f)


def stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the process we started (by PID), SIGKILL after 10 s."""
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()


if __name__ == "__main__":
    asyncio.run(responder(int(sys.argv[1])))
