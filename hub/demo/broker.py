"""The demo's embedded MQTT broker: amqtt on 127.0.0.1, run as its own process.

`python -m hub.demo.broker PORT` serves until SIGTERM/SIGINT. amqtt speaks MQTT 3.1.1 with QoS 1,
persistent sessions (clean_session=false) and retained messages, which is what the agent and the
hub (with `mqtt.protocol: mqttv311`) need. Its sessions live in memory: a restarted demo broker
starts empty, and the agent republishes whatever the hub has not receipted.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from typing import Any

__all__ = ["broker_config", "main", "serve"]


def broker_config(port: int) -> dict[str, Any]:
    """amqtt config: one loopback TCP listener, anonymous clients, no $SYS chatter."""
    return {
        "listeners": {"default": {"type": "tcp", "bind": f"127.0.0.1:{port}"}},
        "plugins": {
            "amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True},
        },
    }


async def serve(port: int) -> None:
    """Run the broker until SIGTERM or SIGINT."""
    from amqtt.broker import Broker  # noqa: PLC0415  (the demo extra only)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    broker = Broker(broker_config(port))
    await broker.start()
    print(f"broker listening on 127.0.0.1:{port}", flush=True)
    try:
        await stop.wait()
    finally:
        await broker.shutdown()


def main(argv: list[str] | None = None) -> None:
    """Entry point of `python -m hub.demo.broker PORT`."""
    args = sys.argv[1:] if argv is None else argv
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    asyncio.run(serve(int(args[0])))


if __name__ == "__main__":
    main()
